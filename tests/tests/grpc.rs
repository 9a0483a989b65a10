//! gRPC through weft-proxy: a real tonic client and server (the standard health service),
//! unary and server-streaming calls, over HTTP/2 on both sides.

use std::time::Duration;
use tokio_stream::StreamExt;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use weft_e2e::config::Mesh;
use weft_e2e::eventually;

fn grpc_service_entry(port: u16) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: health
  namespace: default
spec:
  hosts:
  - health.default.svc.cluster.local
  ports:
  - number: 9090
    name: grpc
    protocol: GRPC
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports:
      grpc: {port}
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_unary_and_server_streaming_through_the_proxy() {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("reviews", tonic_health::ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let mut mesh = Mesh::new();
    mesh.write("health.yaml", &grpc_service_entry(port));
    mesh.start_weftd().await;
    let proxy = mesh.start_proxy("client", "default").await;

    // The channel connects to the sidecar; `:authority` names the service, as an app's
    // traffic would once intercepted.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", proxy.outbound))
        .expect("endpoint")
        .origin("http://health:9090".parse().expect("uri"))
        .connect()
        .await
        .expect("connect to the proxy");
    let mut client = HealthClient::new(channel);

    let status = eventually("unary Check answers", Duration::from_secs(10), || {
        let mut client = client.clone();
        async move {
            client
                .check(HealthCheckRequest {
                    service: "reviews".into(),
                })
                .await
                .ok()
                .map(|r| r.into_inner().status)
        }
    })
    .await;
    assert_eq!(status, ServingStatus::Serving as i32);

    // An unknown service is a gRPC error carried in trailers: it must arrive intact.
    let err = client
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");

    // Server streaming: Watch sends the current status, then every change.
    let mut stream = client
        .watch(HealthCheckRequest {
            service: "reviews".into(),
        })
        .await
        .expect("watch")
        .into_inner();
    let first = stream.next().await.expect("first update").expect("ok");
    assert_eq!(first.status, ServingStatus::Serving as i32);
    reporter
        .set_service_status("reviews", tonic_health::ServingStatus::NotServing)
        .await;
    let second = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("second update in time")
        .expect("second update")
        .expect("ok");
    assert_eq!(second.status, ServingStatus::NotServing as i32);
}

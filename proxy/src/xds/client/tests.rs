//! The client against a fake ADS server (a tonic server in the test, scripted response by
//! response): a bad update is NACKed and the listener it would have removed keeps serving.

use super::*;
use crate::observe::access_log::AccessLogWriter;
use crate::observe::istio::{IstioMetrics, SourceIdentity};
use crate::xds::test_protos::{any, listener, static_cluster, undecodable};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::Stream;
use xds_protos::pb::google::protobuf::Any;
use xds_protos::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer, DeltaDiscoveryRequest,
    DeltaDiscoveryResponse,
};

/// Every wait in these tests is bounded by this.
const WAIT: Duration = Duration::from_secs(10);

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send>>;

/// An ADS server that hands the test every request and sends what the test scripts.
struct FakeAds {
    requests: mpsc::Sender<DiscoveryRequest>,
    responses: Mutex<Option<mpsc::Receiver<Result<DiscoveryResponse, tonic::Status>>>>,
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for FakeAds {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: tonic::Request<tonic::Streaming<DiscoveryRequest>>,
    ) -> Result<tonic::Response<Self::StreamAggregatedResourcesStream>, tonic::Status> {
        let responses = self
            .responses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| tonic::Status::unavailable("the fake serves one stream"))?;
        let mut incoming = request.into_inner();
        let requests = self.requests.clone();
        tokio::spawn(async move {
            while let Ok(Some(req)) = incoming.message().await {
                if requests.send(req).await.is_err() {
                    break;
                }
            }
        });
        Ok(tonic::Response::new(Box::pin(ReceiverStream::new(
            responses,
        ))))
    }

    async fn delta_aggregated_resources(
        &self,
        _: tonic::Request<tonic::Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<tonic::Response<Self::DeltaAggregatedResourcesStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("state-of-the-world only"))
    }
}

struct Ads {
    addr: SocketAddr,
    requests: mpsc::Receiver<DiscoveryRequest>,
    responses: mpsc::Sender<Result<DiscoveryResponse, tonic::Status>>,
}

impl Ads {
    async fn start() -> Ads {
        let (req_tx, requests) = mpsc::channel(64);
        let (responses, resp_rx) = mpsc::channel(64);
        let fake = FakeAds {
            requests: req_tx,
            responses: Mutex::new(Some(resp_rx)),
        };
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(AggregatedDiscoveryServiceServer::new(fake))
                .serve_with_incoming(TcpListenerStream::new(tcp)),
        );
        Ads {
            addr,
            requests,
            responses,
        }
    }

    /// The next request of type `t`, skipping requests of other types.
    async fn next(&mut self, t: &str) -> DiscoveryRequest {
        tokio::time::timeout(WAIT, async {
            loop {
                let req = self
                    .requests
                    .recv()
                    .await
                    .expect("the client's stream ended");
                if req.type_url == t {
                    return req;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {t} request"))
    }

    async fn send(&self, t: &str, version: &str, resources: Vec<Any>) {
        let resp = DiscoveryResponse {
            version_info: version.into(),
            resources,
            type_url: t.into(),
            nonce: format!("{}-{version}", type_url::short_name(t)),
            ..Default::default()
        };
        self.responses.send(Ok(resp)).await.unwrap();
    }
}

/// An upstream that answers every request with 200 "ok".
async fn upstream() -> SocketAddr {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = tcp.accept().await {
            tokio::spawn(http1::Builder::new().serve_connection(
                TokioIo::new(stream),
                hyper::service::service_fn(|_| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                        Bytes::from_static(b"ok"),
                    )))
                }),
            ));
        }
    });
    addr
}

/// A loopback port free right now, for the proxy's listener to bind.
async fn free_port() -> SocketAddr {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    tcp.local_addr().unwrap()
}

async fn get(addr: SocketAddr) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/")
        .header("host", "svc")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(WAIT, sender.send_request(req))
        .await
        .expect("no response")
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn context() -> Arc<ProxyContext> {
    ProxyContext::new(
        AccessLogWriter::stdout(),
        IstioMetrics::new(&SourceIdentity {
            workload: "test".into(),
            namespace: "default".into(),
            app: None,
            version: None,
        }),
    )
}

#[tokio::test]
async fn an_undecodable_listener_is_nacked_and_the_old_listener_keeps_serving() {
    let mut ads = Ads::start().await;
    let up = upstream().await;
    let listen = free_port().await;
    let ctx = context();
    tokio::spawn(XdsClient::new(ads.addr.to_string(), Node::default(), ctx.clone()).run());

    ads.next(CLUSTER).await;
    ads.next(LISTENER).await;
    ads.send(
        CLUSTER,
        "1",
        vec![any(CLUSTER, &static_cluster("svc", &[up]))],
    )
    .await;
    let ack = ads.next(CLUSTER).await;
    assert_eq!((ack.version_info.as_str(), ack.error_detail), ("1", None));
    ads.send(
        LISTENER,
        "1",
        vec![any(LISTENER, &listener("l", Some(listen), "svc"))],
    )
    .await;
    let ack = ads.next(LISTENER).await;
    assert_eq!((ack.version_info.as_str(), ack.error_detail), ("1", None));
    assert!(ctx.is_ready());
    assert_eq!(get(listen).await, (200, "ok".to_string()));

    // A wildcard LDS response whose only listener does not decode: applied per resource, it
    // would remove "l" (absent from the set) and stop its port.
    ads.send(LISTENER, "2", vec![undecodable(LISTENER)]).await;
    let nack = ads.next(LISTENER).await;
    assert_eq!(nack.response_nonce, "Listener-2");
    assert_eq!(
        nack.version_info, "1",
        "a NACK names the version still served"
    );
    let detail = nack.error_detail.map(|e| e.message).unwrap_or_default();
    assert!(detail.contains("resources[0]: cannot decode"), "{detail}");
    assert!(ctx.snapshot.load().listeners.contains_key("l"));
    assert_eq!(get(listen).await, (200, "ok".to_string()));

    // The next good update applies as usual.
    ads.send(LISTENER, "3", vec![]).await;
    let ack = ads.next(LISTENER).await;
    assert_eq!((ack.version_info.as_str(), ack.error_detail), ("3", None));
    assert!(ctx.snapshot.load().listeners.is_empty());
}

//! The client against a fake ADS server (a tonic server in the test, scripted response by
//! response): a bad update is NACKed and the listener it would have removed keeps serving.

use super::*;
use crate::observe::access_log::AccessLogWriter;
use crate::observe::istio::{IstioMetrics, SourceIdentity};
use crate::xds::test_protos::{any, eds_cluster, endpoints, listener, static_cluster, undecodable};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::Stream;
use xds_protos::pb::google::protobuf::Any;
use xds_protos::type_url::{self, CLUSTER, ENDPOINT, LISTENER};
use xds_protos::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer, DeltaDiscoveryRequest,
    DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse, Resource,
};

/// Every wait in these tests is bounded by this.
const WAIT: Duration = Duration::from_secs(10);

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send>>;

/// Scripted streams of one protocol: every request goes to the test, and each stream the
/// client opens answers with what the test sends on the next channel in line. With no
/// channels (a protocol the fake does not serve) the RPC is unimplemented.
struct Script<Req, Resp> {
    requests: mpsc::Sender<Req>,
    streams: Mutex<VecDeque<mpsc::Receiver<Result<Resp, tonic::Status>>>>,
}

impl<Req, Resp> Script<Req, Resp>
where
    Req: prost::Message + Default + Send + 'static,
    Resp: Send + 'static,
{
    fn serve(
        &self,
        request: tonic::Request<tonic::Streaming<Req>>,
    ) -> Result<tonic::Response<ResponseStream<Resp>>, tonic::Status> {
        let responses = self
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
            .ok_or_else(|| tonic::Status::unimplemented("not scripted"))?;
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
}

struct FakeAds {
    sotw: Script<DiscoveryRequest, DiscoveryResponse>,
    delta: Script<DeltaDiscoveryRequest, DeltaDiscoveryResponse>,
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for FakeAds {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: tonic::Request<tonic::Streaming<DiscoveryRequest>>,
    ) -> Result<tonic::Response<Self::StreamAggregatedResourcesStream>, tonic::Status> {
        self.sotw.serve(request)
    }

    async fn delta_aggregated_resources(
        &self,
        request: tonic::Request<tonic::Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<tonic::Response<Self::DeltaAggregatedResourcesStream>, tonic::Status> {
        self.delta.serve(request)
    }
}

/// The test's side of a fake control plane serving `Req`/`Resp` streams.
struct Fake<Req, Resp> {
    addr: SocketAddr,
    requests: mpsc::Receiver<Req>,
    /// One sender per stream the fake will serve, in order.
    streams: VecDeque<mpsc::Sender<Result<Resp, tonic::Status>>>,
}

/// A control plane that serves only state of the world, one stream.
type Ads = Fake<DiscoveryRequest, DiscoveryResponse>;
/// A control plane that serves only delta, `streams` streams one after the other.
type DeltaAds = Fake<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;

/// Serves the two scripts on a loopback port.
async fn serve_fake(
    sotw: Script<DiscoveryRequest, DiscoveryResponse>,
    delta: Script<DeltaDiscoveryRequest, DeltaDiscoveryResponse>,
) -> SocketAddr {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AggregatedDiscoveryServiceServer::new(FakeAds {
                sotw,
                delta,
            }))
            .serve_with_incoming(TcpListenerStream::new(tcp)),
    );
    addr
}

/// A script of `streams` streams, and the test's ends of it: the requests and a sender per
/// stream.
#[allow(clippy::type_complexity)]
fn script<Req, Resp>(
    streams: usize,
) -> (
    Script<Req, Resp>,
    mpsc::Receiver<Req>,
    VecDeque<mpsc::Sender<Result<Resp, tonic::Status>>>,
) {
    let (req_tx, requests) = mpsc::channel(64);
    let (senders, receivers): (VecDeque<_>, VecDeque<_>) =
        (0..streams).map(|_| mpsc::channel(64)).unzip();
    let script = Script {
        requests: req_tx,
        streams: Mutex::new(receivers),
    };
    (script, requests, senders)
}

impl Ads {
    async fn start() -> Ads {
        let (sotw, requests, streams) = script(1);
        let (delta, _, _) = script(0);
        let addr = serve_fake(sotw, delta).await;
        Fake {
            addr,
            requests,
            streams,
        }
    }

    async fn send(&self, t: &str, version: &str, resources: Vec<Any>) {
        let resp = DiscoveryResponse {
            version_info: version.into(),
            resources,
            type_url: t.into(),
            nonce: format!("{}-{version}", type_url::short_name(t)),
            ..Default::default()
        };
        self.streams[0].send(Ok(resp)).await.unwrap();
    }
}

impl DeltaAds {
    async fn start(streams: usize) -> DeltaAds {
        let (sotw, _, _) = script(0);
        let (delta, requests, streams) = script(streams);
        let addr = serve_fake(sotw, delta).await;
        Fake {
            addr,
            requests,
            streams,
        }
    }

    /// Sends on the current stream: `resources` as (name, resource), and `removed` names.
    async fn send(&self, t: &str, nonce: &str, resources: Vec<(&str, Any)>, removed: &[&str]) {
        let resp = DeltaDiscoveryResponse {
            system_version_info: nonce.into(),
            resources: resources
                .into_iter()
                .map(|(name, any)| Resource {
                    name: name.into(),
                    version: format!("{name}@{nonce}"),
                    resource: Some(any),
                    ..Default::default()
                })
                .collect(),
            type_url: t.into(),
            removed_resources: removed.iter().map(|n| n.to_string()).collect(),
            nonce: nonce.into(),
            ..Default::default()
        };
        self.streams[0].send(Ok(resp)).await.unwrap();
    }

    /// Ends the current stream with an error; the client reconnects to the next one.
    async fn break_stream(&mut self) {
        let stream = self.streams.pop_front().expect("a stream");
        stream
            .send(Err(tonic::Status::unavailable("restarting")))
            .await
            .unwrap();
    }
}

/// What every scripted request names its type by.
trait Typed {
    fn type_url(&self) -> &str;
}

impl Typed for DiscoveryRequest {
    fn type_url(&self) -> &str {
        &self.type_url
    }
}

impl Typed for DeltaDiscoveryRequest {
    fn type_url(&self) -> &str {
        &self.type_url
    }
}

impl<Req: Typed, Resp> Fake<Req, Resp> {
    /// The next request of type `t`, skipping requests of other types.
    async fn next(&mut self, t: &str) -> Req {
        tokio::time::timeout(WAIT, async {
            loop {
                let req = self
                    .requests
                    .recv()
                    .await
                    .expect("the client's stream ended");
                if req.type_url() == t {
                    return req;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {t} request"))
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

/// The fake serves state of the world only: the client, delta by default, falls back to it.
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

#[tokio::test]
async fn delta_sends_only_changes_and_subscriptions_move_by_difference() {
    let mut ads = DeltaAds::start(1).await;
    let up = upstream().await;
    let listen = free_port().await;
    let ctx = context();
    tokio::spawn(XdsClient::new(ads.addr.to_string(), Node::default(), ctx.clone()).run());

    // Clusters and listeners: all of them, by a first request naming nothing.
    let cds = ads.next(CLUSTER).await;
    assert!(cds.node.is_some(), "the first request carries the node");
    assert!(cds.resource_names_subscribe.is_empty() && cds.initial_resource_versions.is_empty());
    let lds = ads.next(LISTENER).await;
    assert!(lds.node.is_none() && lds.resource_names_subscribe.is_empty());

    // A new EDS cluster: its endpoints are asked for before the clusters are ACKed, and the
    // subscription carries no nonce (a nonce would answer a response).
    ads.send(
        CLUSTER,
        "c1",
        vec![("svc", any(CLUSTER, &eds_cluster("svc")))],
        &[],
    )
    .await;
    let eds = ads.next(ENDPOINT).await;
    assert_eq!(eds.resource_names_subscribe, ["svc"]);
    assert_eq!(eds.response_nonce, "");
    let ack = ads.next(CLUSTER).await;
    assert_eq!(
        (ack.response_nonce.as_str(), ack.error_detail),
        ("c1", None)
    );
    ads.send(
        ENDPOINT,
        "e1",
        vec![("svc", any(ENDPOINT, &endpoints("svc", &[up])))],
        &[],
    )
    .await;
    assert_eq!(ads.next(ENDPOINT).await.response_nonce, "e1");
    ads.send(
        LISTENER,
        "l1",
        vec![("l", any(LISTENER, &listener("l", Some(listen), "svc")))],
        &[],
    )
    .await;
    let ack = ads.next(LISTENER).await;
    assert_eq!(
        (ack.response_nonce.as_str(), ack.error_detail),
        ("l1", None)
    );
    assert!(ctx.is_ready());
    assert_eq!(get(listen).await, (200, "ok".to_string()));
    assert_eq!(ctx.snapshot.load().versions[LISTENER], "l1");

    // A change names what it adds and what it removes; the endpoint subscription follows.
    ads.send(
        CLUSTER,
        "c2",
        vec![("other", any(CLUSTER, &eds_cluster("other")))],
        &["svc"],
    )
    .await;
    let eds = ads.next(ENDPOINT).await;
    assert_eq!(
        (eds.resource_names_subscribe, eds.resource_names_unsubscribe),
        (vec!["other".to_string()], vec!["svc".to_string()])
    );
    assert_eq!(ads.next(CLUSTER).await.response_nonce, "c2");
    let snapshot = ctx.snapshot.load();
    let clusters: Vec<&str> = snapshot.clusters.keys().map(|k| &**k).collect();
    assert_eq!(clusters, ["other"]);

    // A resource that does not decode is NACKed by its place; the rest apply, and what the
    // response does not mention stays (a delta response removes only what it names).
    ads.send(
        LISTENER,
        "l2",
        vec![
            ("bad", undecodable(LISTENER)),
            ("m", any(LISTENER, &listener("m", None, "other"))),
        ],
        &[],
    )
    .await;
    let nack = ads.next(LISTENER).await;
    assert_eq!(nack.response_nonce, "l2");
    let detail = nack.error_detail.map(|e| e.message).unwrap_or_default();
    assert!(detail.contains("resources[0]: cannot decode"), "{detail}");
    let snapshot = ctx.snapshot.load();
    assert!(snapshot.listeners.contains_key("l") && snapshot.listeners.contains_key("m"));
    assert_eq!(snapshot.versions[LISTENER], "l1", "the version held whole");
}

#[tokio::test]
async fn a_reconnecting_delta_client_announces_what_it_holds() {
    let mut ads = DeltaAds::start(2).await;
    let up = upstream().await;
    let ctx = context();
    tokio::spawn(XdsClient::new(ads.addr.to_string(), Node::default(), ctx.clone()).run());
    ads.next(CLUSTER).await;
    ads.send(
        CLUSTER,
        "c1",
        vec![("svc", any(CLUSTER, &static_cluster("svc", &[up])))],
        &[],
    )
    .await;
    assert_eq!(ads.next(CLUSTER).await.response_nonce, "c1");
    ads.send(
        LISTENER,
        "l1",
        vec![("l", any(LISTENER, &listener("l", None, "svc")))],
        &[],
    )
    .await;
    assert_eq!(ads.next(LISTENER).await.response_nonce, "l1");

    ads.break_stream().await;
    let cds = ads.next(CLUSTER).await;
    assert!(cds.node.is_some(), "a new stream starts with the node");
    assert_eq!(
        cds.initial_resource_versions,
        HashMap::from([("svc".to_string(), "svc@c1".to_string())])
    );
    let lds = ads.next(LISTENER).await;
    assert_eq!(
        lds.initial_resource_versions,
        HashMap::from([("l".to_string(), "l@l1".to_string())])
    );
    // What went away meanwhile is named as removed, and goes.
    ads.send(CLUSTER, "c2", vec![], &["svc"]).await;
    assert_eq!(ads.next(CLUSTER).await.response_nonce, "c2");
    assert!(ctx.snapshot.load().clusters.is_empty());
}

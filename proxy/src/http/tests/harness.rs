//! A proxy serving a hand-built configuration on a loopback port, and in-process upstreams
//! with scripted behaviour: the request path under test with real sockets, no control plane.

use crate::context::ProxyContext;
use crate::observe::access_log::{AccessLogWriter, ACCESS_LOG_QUEUE};
use crate::observe::istio::{IstioMetrics, SourceIdentity};
use crate::xds::state::XdsCache;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use xds_protos::pb::envoy::config::accesslog::v3::AccessLog;
use xds_protos::pb::envoy::config::cluster::v3::Cluster;
use xds_protos::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
use xds_protos::pb::envoy::config::route::v3::{
    route, route_action, route_match::PathSpecifier, Route, RouteAction, RouteConfiguration,
    RouteMatch, VirtualHost,
};
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, HttpConnectionManager, HttpFilter,
};
use xds_protos::pb::google::protobuf::Any;
use xds_protos::type_url;

pub(crate) use crate::test_fixtures::{any, static_cluster as cluster};

/// A route for every path to `cluster`, shaped by `f`.
pub fn route_to(cluster: &str, f: impl FnOnce(&mut Route, &mut RouteAction)) -> Route {
    let mut ra = RouteAction {
        cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster.into())),
        ..Default::default()
    };
    let mut r = Route {
        name: "test-route".into(),
        r#match: Some(RouteMatch {
            path_specifier: Some(PathSpecifier::Prefix("/".into())),
            ..Default::default()
        }),
        ..Default::default()
    };
    f(&mut r, &mut ra);
    r.action = Some(route::Action::Route(ra));
    r
}

pub fn vhost(routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        name: "test".into(),
        domains: vec!["*".into()],
        routes,
        ..Default::default()
    }
}

/// Makes the test client (on loopback) internal, as weftd's local mode does: the proxy is the
/// edge (`use_remote_address`) and 127.0.0.1 is an internal address.
pub fn loopback_is_internal(hcm: &mut HttpConnectionManager) {
    use xds_protos::pb::envoy::config::core::v3::CidrRange;
    use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::InternalAddressConfig;
    hcm.use_remote_address = Some(xds_protos::pb::google::protobuf::BoolValue { value: true });
    hcm.internal_address_config = Some(InternalAddressConfig {
        cidr_ranges: vec![CidrRange {
            address_prefix: "127.0.0.1".into(),
            prefix_len: Some(xds_protos::pb::google::protobuf::UInt32Value { value: 32 }),
        }],
        ..Default::default()
    });
}

/// A proxy listening on loopback with this route configuration and these clusters.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub ctx: Arc<ProxyContext>,
}

/// The access log lines a test proxy wrote, as its writer thread wrote them.
#[derive(Clone, Default)]
pub struct LogLines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogLines {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The line that contains `needle`, once the writer thread has written it. Bounded by a
    /// count of short real-time waits (the writer is an OS thread, so a paused tokio clock
    /// must not hurry them), not by a deadline the test asserts.
    pub async fn line(&self, needle: &str) -> String {
        for _ in 0..10_000 {
            if let Some(l) = self.text().lines().find(|l| l.contains(needle)) {
                return l.to_string();
            }
            tokio::task::yield_now().await;
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        panic!("no access log line with {needle:?} in:\n{}", self.text())
    }
}

impl TestProxy {
    pub async fn start(vh: VirtualHost, filters: Vec<HttpFilter>, clusters: Vec<Cluster>) -> Self {
        Self::build(
            vh,
            filters,
            clusters,
            vec![],
            AccessLogWriter::stdout(),
            |_| {},
        )
        .await
    }

    /// [`TestProxy::start`] with the connection manager adjusted by `tweak` (downstream
    /// limits and timeouts).
    pub async fn start_with(
        vh: VirtualHost,
        filters: Vec<HttpFilter>,
        clusters: Vec<Cluster>,
        tweak: impl FnOnce(&mut HttpConnectionManager),
    ) -> Self {
        Self::build(
            vh,
            filters,
            clusters,
            vec![],
            AccessLogWriter::stdout(),
            tweak,
        )
        .await
    }

    /// A proxy whose connection manager has `log`, writing into the returned lines.
    pub async fn start_logged(
        vh: VirtualHost,
        filters: Vec<HttpFilter>,
        clusters: Vec<Cluster>,
        log: AccessLog,
    ) -> (Self, LogLines) {
        let lines = LogLines::default();
        let writer = AccessLogWriter::new(lines.clone(), ACCESS_LOG_QUEUE);
        let proxy = Self::build(vh, filters, clusters, vec![log], writer, |_| {}).await;
        (proxy, lines)
    }

    async fn build(
        vh: VirtualHost,
        filters: Vec<HttpFilter>,
        clusters: Vec<Cluster>,
        access_log: Vec<AccessLog>,
        writer: AccessLogWriter,
        tweak: impl FnOnce(&mut HttpConnectionManager),
    ) -> Self {
        let mut hcm = HttpConnectionManager {
            stat_prefix: "test".into(),
            route_specifier: Some(RouteSpecifier::RouteConfig(RouteConfiguration {
                name: "test".into(),
                virtual_hosts: vec![vh],
                ..Default::default()
            })),
            http_filters: filters,
            access_log,
            ..Default::default()
        };
        tweak(&mut hcm);
        let listener = Listener {
            name: "test".into(),
            filter_chains: vec![FilterChain {
                filters: vec![Filter {
                    name: "envoy.filters.network.http_connection_manager".into(),
                    config_type: Some(filter::ConfigType::TypedConfig(any(
                        type_url::HTTP_CONNECTION_MANAGER,
                        &hcm,
                    ))),
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut cache = XdsCache::default();
        let applied = cache.apply(
            type_url::LISTENER,
            "1",
            &[any(type_url::LISTENER, &listener)],
        );
        assert!(applied.rejected.is_empty(), "{:?}", applied.rejected);
        let resources: Vec<Any> = clusters.iter().map(|c| any(type_url::CLUSTER, c)).collect();
        let applied = cache.apply(type_url::CLUSTER, "1", &resources);
        assert!(applied.rejected.is_empty(), "{:?}", applied.rejected);
        let ctx = ProxyContext::new(writer, IstioMetrics::new(&test_source_identity()));
        let snapshot = cache.build_snapshot(&ctx.snapshot.load());
        ctx.snapshot.store(Arc::new(snapshot));
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let proxy_ctx = ctx.clone();
        tokio::spawn(async move {
            while let Ok((stream, peer)) = tcp.accept().await {
                tokio::spawn(crate::listener::serve_accepted(
                    crate::downstream::OpenConnection::open(ctx.clone()),
                    Arc::from("test"),
                    stream,
                    peer,
                ));
            }
        });
        TestProxy {
            addr,
            ctx: proxy_ctx,
        }
    }

    pub async fn send(&self, req: Request<Full<Bytes>>) -> Reply {
        let stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let resp = sender.send_request(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(get(path)).await
    }
}

pub fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://svc{path}"))
        .header("host", "svc")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

/// What an upstream saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

type Behaviour = Arc<
    dyn Fn(usize, &Seen) -> Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>
        + Send
        + Sync,
>;

/// An upstream that records every request and answers as `behaviour` says, given the
/// request's number (0-based) on this upstream.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    count: Arc<AtomicUsize>,
}

impl Upstream {
    pub async fn start<F, Fut>(behaviour: F) -> Upstream
    where
        F: Fn(usize, Seen) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        let behaviour: Behaviour = Arc::new(move |n, seen| Box::pin(behaviour(n, seen.clone())));
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let (seen2, count2) = (seen.clone(), count.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = tcp.accept().await {
                let (seen, count, behaviour) = (seen2.clone(), count2.clone(), behaviour.clone());
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (seen, count, behaviour) = (seen.clone(), count.clone(), behaviour.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let s = Seen {
                            path: parts
                                .uri
                                .path_and_query()
                                .map_or("/".into(), |p| p.to_string()),
                            headers: parts.headers,
                            body,
                        };
                        seen.lock().unwrap().push(s.clone());
                        let n = count.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, std::convert::Infallible>(behaviour(n, &s).await)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc),
                );
            }
        });
        Upstream { addr, seen, count }
    }

    /// Answers every request with `status` and the body `name`.
    pub async fn fixed(status: u16, name: &'static str) -> Upstream {
        Upstream::start(move |_, _| async move { respond(status, name) }).await
    }

    pub fn requests(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

pub fn respond(status: u16, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r
}

/// A loopback address nothing listens on.
pub async fn dead_address() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// The identity the in-process test proxies report as their source.
pub fn test_source_identity() -> SourceIdentity {
    SourceIdentity {
        workload: "productpage-v1".into(),
        namespace: "default".into(),
        app: Some("productpage".into()),
        version: Some("v1".into()),
    }
}

//! Listeners through their real accept path: chains chosen by sniffed protocol and by
//! destination port, HTTP to the connection manager, everything else relayed byte for byte.

use super::ListenerManager;
use crate::context::ProxyContext;
use crate::observe::access_log::AccessLogWriter;
use crate::observe::istio::{IstioMetrics, SourceIdentity};
use crate::test_fixtures::{any, socket, static_cluster};
use crate::xds::state::XdsCache;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use xds_protos::pb::envoy::config::listener::v3::{
    filter, Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter,
};
use xds_protos::pb::envoy::config::route::v3::{
    route, route_action, route_match::PathSpecifier, Route, RouteAction, RouteConfiguration,
    RouteMatch, VirtualHost,
};
use xds_protos::pb::envoy::extensions::filters::http::router::v3::Router;
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, http_filter, HttpConnectionManager, HttpFilter,
};
use xds_protos::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    tcp_proxy::ClusterSpecifier, TcpProxy,
};
use xds_protos::pb::google::protobuf::UInt32Value;
use xds_protos::type_url;

/// Every wait in these tests is bounded by this.
const WAIT: Duration = Duration::from_secs(10);

fn hcm_to(cluster: &str) -> Filter {
    let hcm = HttpConnectionManager {
        stat_prefix: "inbound_0.0.0.0_9080".into(),
        route_specifier: Some(RouteSpecifier::RouteConfig(RouteConfiguration {
            name: "inbound|9080||".into(),
            virtual_hosts: vec![VirtualHost {
                name: "inbound|http|9080".into(),
                domains: vec!["*".into()],
                routes: vec![Route {
                    r#match: Some(RouteMatch {
                        path_specifier: Some(PathSpecifier::Prefix("/".into())),
                        ..Default::default()
                    }),
                    action: Some(route::Action::Route(RouteAction {
                        cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                            cluster.into(),
                        )),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(any(
                type_url::ROUTER,
                &Router::default(),
            ))),
            ..Default::default()
        }],
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.http_connection_manager".into(),
        config_type: Some(filter::ConfigType::TypedConfig(any(
            type_url::HTTP_CONNECTION_MANAGER,
            &hcm,
        ))),
    }
}

fn tcp_to(cluster: &str) -> Filter {
    let tcp = TcpProxy {
        stat_prefix: cluster.into(),
        cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.into())),
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.tcp_proxy".into(),
        config_type: Some(filter::ConfigType::TypedConfig(any(
            type_url::TCP_PROXY,
            &tcp,
        ))),
    }
}

fn chain(m: Option<FilterChainMatch>, filter: Filter) -> FilterChain {
    FilterChain {
        filter_chain_match: m,
        filters: vec![filter],
        ..Default::default()
    }
}

fn http_inspector() -> ListenerFilter {
    ListenerFilter {
        name: "envoy.filters.listener.http_inspector".into(),
        ..Default::default()
    }
}

/// An HTTP/1.1 upstream that answers `web`.
async fn web_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let svc = hyper::service::service_fn(|_req| async {
                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                    Bytes::from_static(b"web"),
                )))
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(s), svc));
        }
    });
    addr
}

/// A TCP upstream that sends back what it receives, prefixed by `echo:`.
async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let mut out = b"echo:".to_vec();
                    out.extend_from_slice(&buf[..n]);
                    if s.write_all(&out).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A free loopback port (bound and released: the listener manager binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Applies the listener and the clusters, and binds what the listener binds.
fn serve(
    listener: Listener,
    clusters: Vec<xds_protos::pb::envoy::config::cluster::v3::Cluster>,
) -> (Arc<ProxyContext>, ListenerManager) {
    serve_logged(
        listener,
        clusters,
        AccessLogWriter::new(std::io::sink(), 16),
    )
}

fn serve_logged(
    listener: Listener,
    clusters: Vec<xds_protos::pb::envoy::config::cluster::v3::Cluster>,
    log: AccessLogWriter,
) -> (Arc<ProxyContext>, ListenerManager) {
    let mut cache = XdsCache::default();
    let applied = cache.apply(
        type_url::LISTENER,
        "1",
        &[any(type_url::LISTENER, &listener)],
    );
    assert!(applied.rejected.is_empty(), "{:?}", applied.rejected);
    let clusters: Vec<_> = clusters.iter().map(|c| any(type_url::CLUSTER, c)).collect();
    let applied = cache.apply(type_url::CLUSTER, "1", &clusters);
    assert!(applied.rejected.is_empty(), "{:?}", applied.rejected);
    let ctx = ProxyContext::new(log, IstioMetrics::new(&SourceIdentity::default()));
    ctx.snapshot
        .store(Arc::new(cache.build_snapshot(&ctx.snapshot.load())));
    let mut manager = ListenerManager::new(ctx.clone());
    let compiled: BTreeMap<_, _> = ctx
        .snapshot
        .load()
        .listeners
        .iter()
        .map(|(n, l)| (n.clone(), l.clone()))
        .collect();
    assert_eq!(manager.reconcile(&compiled), Vec::<String>::new());
    (ctx, manager)
}

async fn http_get(addr: SocketAddr) -> String {
    let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get("/")
        .header("host", "reviews")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(WAIT, sender.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

async fn h2c_get(addr: SocketAddr) -> String {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get("http://reviews/")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(WAIT, sender.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut buf = vec![0u8; 5 + bytes.len()];
    tokio::time::timeout(WAIT, s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    buf
}

/// Istio's sniffing chains: HTTP (either version) goes to the connection manager, anything else
/// to the TCP proxy, which relays it byte for byte — the sniffed bytes included.
#[tokio::test]
async fn sniffed_http_is_served_as_http_and_the_rest_is_relayed() {
    let web = web_server().await;
    let echo = echo_server().await;
    let port = free_port();
    let http_match = FilterChainMatch {
        application_protocols: vec!["http/1.1".into(), "h2c".into()],
        ..Default::default()
    };
    let listener = Listener {
        name: "virtualInbound".into(),
        address: Some(socket(SocketAddr::from(([127, 0, 0, 1], port)))),
        listener_filters: vec![http_inspector()],
        filter_chains: vec![chain(Some(http_match), hcm_to("web"))],
        default_filter_chain: Some(chain(None, tcp_to("echo"))),
        ..Default::default()
    };
    let (_ctx, _manager) = serve(
        listener,
        vec![
            static_cluster("web", &[web]),
            static_cluster("echo", &[echo]),
        ],
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(http_get(addr).await, "web");
    assert_eq!(h2c_get(addr).await, "web");
    assert_eq!(
        exchange(addr, b"\x00\x01binary").await,
        b"echo:\x00\x01binary"
    );
    // Text that is not a request line is not HTTP either.
    assert_eq!(
        exchange(addr, b"EHLO mail\r\n").await,
        b"echo:EHLO mail\r\n"
    );
}

/// Chains by destination port: the connection's own port picks its chain; a port no chain
/// names and no default chain: the connection is closed, not hung.
#[tokio::test]
async fn the_destination_port_picks_the_chain_and_no_match_closes() {
    let echo = echo_server().await;
    let port = free_port();
    let by_port = |p: u16| FilterChainMatch {
        destination_port: Some(UInt32Value {
            value: u32::from(p),
        }),
        ..Default::default()
    };
    let listener = Listener {
        name: "by_port".into(),
        address: Some(socket(SocketAddr::from(([127, 0, 0, 1], port)))),
        filter_chains: vec![
            chain(Some(by_port(port)), tcp_to("echo")),
            chain(Some(by_port(port.wrapping_add(1))), tcp_to("missing")),
        ],
        ..Default::default()
    };
    let (_ctx, _manager) = serve(listener, vec![static_cluster("echo", &[echo])]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(exchange(addr, b"ping").await, b"echo:ping");

    let other = free_port();
    let listener = Listener {
        name: "no_match".into(),
        address: Some(socket(SocketAddr::from(([127, 0, 0, 1], other)))),
        filter_chains: vec![chain(Some(by_port(other.wrapping_add(1))), tcp_to("echo"))],
        ..Default::default()
    };
    let (_ctx, _manager) = serve(listener, vec![static_cluster("echo", &[echo])]);
    let mut s = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], other)))
        .await
        .unwrap();
    let mut buf = [0u8; 8];
    let read = tokio::time::timeout(WAIT, s.read(&mut buf)).await.unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "closed: {read:?}");
}

/// `bind_to_port: false` binds nothing; `use_original_dst` hands a connection to the listener
/// at its original destination, exact address first, then the wildcard address of that port.
#[test]
fn hand_off_targets_by_exact_address_then_wildcard() {
    use crate::snapshot::Snapshot;
    let port_listener = |name: &str, ip: [u8; 4], port: u16, bind: bool| Listener {
        name: name.into(),
        address: Some(socket(SocketAddr::from((ip, port)))),
        bind_to_port: Some(xds_protos::pb::google::protobuf::BoolValue { value: bind }),
        filter_chains: vec![chain(None, tcp_to("echo"))],
        ..Default::default()
    };
    let mut cache = XdsCache::default();
    let listeners = [
        port_listener("0.0.0.0_9080", [0, 0, 0, 0], 9080, false),
        port_listener("10.96.0.20_27017", [10, 96, 0, 20], 27017, false),
        port_listener("0.0.0.0_27017", [0, 0, 0, 0], 27017, false),
    ];
    let resources: Vec<_> = listeners
        .iter()
        .map(|l| any(type_url::LISTENER, l))
        .collect();
    assert!(cache
        .apply(type_url::LISTENER, "1", &resources)
        .rejected
        .is_empty());
    let snapshot: Snapshot = cache.build_snapshot(&Snapshot::default());
    let at = |dst: &str| {
        snapshot
            .listener_at(dst.parse().unwrap())
            .map(|l| l.name.clone())
    };
    assert_eq!(at("10.96.0.7:9080").as_deref(), Some("0.0.0.0_9080"));
    assert_eq!(at("10.96.0.20:27017").as_deref(), Some("10.96.0.20_27017"));
    assert_eq!(at("10.96.0.21:27017").as_deref(), Some("0.0.0.0_27017"));
    assert_eq!(at("10.96.0.21:8080"), None);
    assert!(snapshot.listeners.values().all(|l| l.binds().is_none()));
}

/// A TCP connection logs one line when it closes, with Envoy's TCP fields: the bytes each way,
/// the upstream host and cluster, and the flag that explains a failure (`UH` for a cluster
/// with no host, as Istio's `BlackHoleCluster`).
#[tokio::test]
async fn tcp_connections_are_logged_with_bytes_and_flags() {
    use crate::http::tests::harness::LogLines;
    use xds_protos::pb::envoy::config::accesslog::v3::{access_log, AccessLog};
    use xds_protos::pb::envoy::config::core::v3::{
        data_source, substitution_format_string, DataSource, SubstitutionFormatString,
    };
    use xds_protos::pb::envoy::extensions::access_loggers::stream::v3::{
        stdout_access_log, StdoutAccessLog,
    };
    let echo = echo_server().await;
    let format = "%DOWNSTREAM_LOCAL_ADDRESS% %UPSTREAM_CLUSTER% %UPSTREAM_HOST% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %PROTOCOL%\n";
    let logger = AccessLog {
        name: "envoy.access_loggers.stdout".into(),
        config_type: Some(access_log::ConfigType::TypedConfig(any(
            type_url::STDOUT_ACCESS_LOG,
            &StdoutAccessLog {
                access_log_format: Some(stdout_access_log::AccessLogFormat::LogFormat(
                    SubstitutionFormatString {
                        format: Some(substitution_format_string::Format::TextFormatSource(
                            DataSource {
                                specifier: Some(data_source::Specifier::InlineString(
                                    format.into(),
                                )),
                                ..Default::default()
                            },
                        )),
                        ..Default::default()
                    },
                )),
            },
        ))),
        ..Default::default()
    };
    let logged_tcp = |cluster: &str| {
        let tcp = TcpProxy {
            stat_prefix: cluster.into(),
            cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.into())),
            access_log: vec![logger.clone()],
            ..Default::default()
        };
        Filter {
            name: "envoy.filters.network.tcp_proxy".into(),
            config_type: Some(filter::ConfigType::TypedConfig(any(
                type_url::TCP_PROXY,
                &tcp,
            ))),
        }
    };
    let (echo_port, hole_port) = (free_port(), free_port());
    let by_port = |p: u16| FilterChainMatch {
        destination_port: Some(UInt32Value {
            value: u32::from(p),
        }),
        ..Default::default()
    };
    let listener = |name: &str, port: u16, cluster: &str| Listener {
        name: name.into(),
        address: Some(socket(SocketAddr::from(([127, 0, 0, 1], port)))),
        filter_chains: vec![chain(Some(by_port(port)), logged_tcp(cluster))],
        ..Default::default()
    };
    let lines = LogLines::default();
    let writer = AccessLogWriter::new(lines.clone(), 16);
    let (a, _m1) = serve_logged(
        listener("echo", echo_port, "echo"),
        vec![static_cluster("echo", &[echo])],
        writer.clone(),
    );
    let (_b, _m2) = serve_logged(
        listener("hole", hole_port, "BlackHoleCluster"),
        vec![static_cluster("BlackHoleCluster", &[])],
        writer,
    );
    let echo_addr = SocketAddr::from(([127, 0, 0, 1], echo_port));
    {
        let mut s = TcpStream::connect(echo_addr).await.unwrap();
        s.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 9];
        s.read_exact(&mut buf).await.unwrap();
        s.shutdown().await.unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(WAIT, s.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
    }
    let line = lines.line(&format!("{echo_addr} echo")).await;
    assert_eq!(line, format!("{echo_addr} echo {echo} - 4 9 -"));
    // Istio's TCP metrics count the connection and its bytes, as the client's side (source).
    let page = a.metrics.render();
    let sample = |name: &str| {
        page.lines()
            .find(|l| l.starts_with(name) && l.contains("reporter=\"source\""))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or_else(|| panic!("no {name} in\n{page}"))
            .to_string()
    };
    assert_eq!(sample("istio_tcp_connections_opened_total{"), "1");
    assert_eq!(sample("istio_tcp_connections_closed_total{"), "1");
    assert_eq!(sample("istio_tcp_received_bytes_total{"), "4");
    assert_eq!(sample("istio_tcp_sent_bytes_total{"), "9");

    // No upstream: the client is reset, as Envoy does, not handed a clean (empty) close.
    let hole_addr = SocketAddr::from(([127, 0, 0, 1], hole_port));
    let mut s = TcpStream::connect(hole_addr).await.unwrap();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(WAIT, s.read(&mut buf)).await.unwrap();
    assert_eq!(
        read.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset)
    );
    let line = lines.line("BlackHoleCluster").await;
    assert_eq!(line, format!("{hole_addr} BlackHoleCluster - UH 0 0 -"));
}

mod istio_layout;

/// An upstream that resets the connection: the reset reaches the client, as Envoy passes it on,
/// rather than a clean close that reads as an empty answer.
#[tokio::test]
async fn an_upstream_reset_is_passed_on_as_a_reset() {
    let resetting = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = resetting.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = resetting.accept().await {
            let mut buf = [0u8; 16];
            let _ = s.read(&mut buf).await;
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
        }
    });
    let port = free_port();
    let listener = Listener {
        name: "resets".into(),
        address: Some(socket(SocketAddr::from(([127, 0, 0, 1], port)))),
        filter_chains: vec![chain(None, tcp_to("resetting"))],
        ..Default::default()
    };
    let (_ctx, _manager) = serve(listener, vec![static_cluster("resetting", &[upstream])]);
    let mut s = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    s.write_all(b"hello").await.unwrap();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(WAIT, s.read(&mut buf)).await.unwrap();
    assert_eq!(
        read.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset)
    );
}

fn connection_limit(max: u64, delay: Option<Duration>) -> Filter {
    use xds_protos::pb::envoy::extensions::filters::network::connection_limit::v3::ConnectionLimit;
    let limit = ConnectionLimit {
        stat_prefix: "echo_limit".into(),
        max_connections: Some(xds_protos::pb::google::protobuf::UInt64Value { value: max }),
        delay: delay.map(|d| xds_protos::pb::google::protobuf::Duration {
            seconds: d.as_secs() as i64,
            nanos: d.subsec_nanos() as i32,
        }),
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.connection_limit".into(),
        config_type: Some(filter::ConfigType::TypedConfig(any(
            crate::config::CONNECTION_LIMIT_TYPE,
            &limit,
        ))),
    }
}

/// A listener on a free port whose one chain limits connections before relaying to `echo`.
fn limited_listener(port: u16, max: u64, delay: Option<Duration>) -> Listener {
    Listener {
        name: "limited".into(),
        address: Some(socket(SocketAddr::from(([127, 0, 0, 1], port)))),
        filter_chains: vec![FilterChain {
            filters: vec![connection_limit(max, delay), tcp_to("echo")],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A connection that the relay served (its bytes came back echoed), kept open.
async fn relayed(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"hi").await.unwrap();
    let mut buf = [0u8; 7];
    tokio::time::timeout(WAIT, s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"echo:hi");
    s
}

/// Reads until the proxy closes the connection; what it sent before (nothing, for a refused
/// connection).
async fn until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut got))
        .await
        .expect("the proxy closes the connection")
        .unwrap_or_default();
    got
}

fn stat(ctx: &ProxyContext, name: &str) -> u64 {
    let page = crate::admin::prometheus(ctx);
    let series =
        format!("envoy_connection_limit_{name}{{envoy_connection_limit_prefix=\"echo_limit\"}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{page}"))
}

/// Waits (bounded) until `name` reads `want`.
async fn stat_reaches(ctx: &ProxyContext, name: &str, want: u64) {
    for _ in 0..5_000 {
        if stat(ctx, name) == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(stat(ctx, name), want, "{name}");
}

/// `connection_limit` through the real accept path: `max_connections` are served, the next is
/// closed unserved and counted, and a close makes room again.
#[tokio::test]
async fn a_chain_serves_at_most_max_connections_and_closes_the_rest() {
    let echo = echo_server().await;
    let port = free_port();
    let (ctx, _manager) = serve(
        limited_listener(port, 2, None),
        vec![static_cluster("echo", &[echo])],
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let first = relayed(addr).await;
    let _second = relayed(addr).await;
    assert_eq!(stat(&ctx, "active_connections"), 2);

    let mut third = TcpStream::connect(addr).await.unwrap();
    let _ = third.write_all(b"hi").await;
    assert_eq!(until_closed(&mut third).await, b"");
    assert_eq!(stat(&ctx, "limited_connections"), 1);
    assert_eq!(stat(&ctx, "active_connections"), 2);

    drop(first);
    stat_reaches(&ctx, "active_connections", 1).await;
    let _again = relayed(addr).await;
    assert_eq!(stat(&ctx, "limited_connections"), 1);
}

/// With `delay`, a refused connection is held open (counted at once) and closed after it; a
/// draining proxy closes it without waiting the delay out.
#[tokio::test]
async fn a_refused_connection_is_held_for_the_delay_and_draining_cuts_it_short() {
    let echo = echo_server().await;
    let port = free_port();
    let (ctx, _manager) = serve(
        limited_listener(port, 1, Some(Duration::from_secs(3600))),
        vec![static_cluster("echo", &[echo])],
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let _served = relayed(addr).await;
    let mut refused = TcpStream::connect(addr).await.unwrap();
    stat_reaches(&ctx, "limited_connections", 1).await;
    // Still open: nothing to read, and no end of stream either.
    let mut buf = [0u8; 1];
    assert!(
        matches!(refused.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the refused connection is held for the delay"
    );
    let _ = ctx.draining.send(true);
    assert_eq!(until_closed(&mut refused).await, b"");
}

/// A listener update that leaves the chain as it was keeps the count: the connection open
/// before it still fills the limit after it.
#[tokio::test]
async fn the_count_survives_an_update_that_leaves_the_filter_unchanged() {
    let echo = echo_server().await;
    let port = free_port();
    let listener = limited_listener(port, 1, None);
    let (ctx, _manager) = serve(listener.clone(), vec![static_cluster("echo", &[echo])]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let _open = relayed(addr).await;

    // The listener changes elsewhere, so it is recompiled; its chain and filter do not.
    let mut updated = listener;
    updated.listener_filters_timeout = Some(xds_protos::pb::google::protobuf::Duration {
        seconds: 5,
        nanos: 0,
    });
    let mut cache = XdsCache::default();
    let applied = cache.apply(
        type_url::LISTENER,
        "2",
        &[any(type_url::LISTENER, &updated)],
    );
    assert!(applied.rejected.is_empty(), "{:?}", applied.rejected);
    let applied = cache.apply(
        type_url::CLUSTER,
        "2",
        &[any(type_url::CLUSTER, &static_cluster("echo", &[echo]))],
    );
    assert!(applied.rejected.is_empty(), "{:?}", applied.rejected);
    let before = ctx.snapshot.load_full();
    ctx.snapshot.store(Arc::new(cache.build_snapshot(&before)));
    assert!(!Arc::ptr_eq(
        &before.listeners["limited"],
        &ctx.snapshot.load().listeners["limited"]
    ));

    let mut refused = TcpStream::connect(addr).await.unwrap();
    let _ = refused.write_all(b"hi").await;
    assert_eq!(until_closed(&mut refused).await, b"");
    assert_eq!(stat(&ctx, "limited_connections"), 1);
}

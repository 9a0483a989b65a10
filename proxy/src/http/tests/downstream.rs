//! Downstream limits and timers on real sockets: header count and size answered 431 (HTTP/1.1
//! and HTTP/2), a slow-loris client cut at `request_headers_timeout` while others are served,
//! idle connections closed at `idle_timeout` (and not before), and draining (`Connection:
//! close` on HTTP/1.1, GOAWAY on HTTP/2, in-flight requests completed).

use super::harness::*;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use xds_protos::pb::envoy::config::core::v3::HttpProtocolOptions;
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use xds_protos::pb::google::protobuf::{Duration as ProtoDuration, UInt32Value};

async fn proxy_to(up: &Upstream, tweak: impl FnOnce(&mut HttpConnectionManager)) -> TestProxy {
    let vh = vhost(vec![route_to("svc", |_, _| {})]);
    TestProxy::start_with(vh, vec![], vec![cluster("svc", &[up.addr])], tweak).await
}

fn secs(s: i64) -> Option<ProtoDuration> {
    Some(ProtoDuration {
        seconds: s,
        nanos: 0,
    })
}

fn common(f: impl FnOnce(&mut HttpProtocolOptions)) -> impl FnOnce(&mut HttpConnectionManager) {
    move |hcm| {
        let mut c = HttpProtocolOptions::default();
        f(&mut c);
        hcm.common_http_protocol_options = Some(c);
    }
}

/// `get("/")` (which carries `host`) plus `extra` headers of `value_len` bytes each.
fn with_headers(extra: usize, value_len: usize) -> Request<Full<Bytes>> {
    let mut req = get("/");
    for i in 0..extra {
        req.headers_mut().append(
            http::HeaderName::try_from(format!("x-h-{i}")).unwrap(),
            "v".repeat(value_len).parse().unwrap(),
        );
    }
    req
}

async fn h2_client(
    addr: std::net::SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    tokio::task::JoinHandle<Result<(), hyper::Error>>,
) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake::<_, Full<Bytes>>(TokioIo::new(stream))
        .await
        .unwrap();
    (sender, tokio::spawn(conn))
}

#[tokio::test]
async fn more_headers_than_max_headers_count_are_answered_431() {
    let up = Upstream::fixed(200, "ok").await;
    let proxy = proxy_to(
        &up,
        common(|c| c.max_headers_count = Some(UInt32Value { value: 10 })),
    )
    .await;
    assert_eq!(proxy.send(with_headers(5, 8)).await.status, StatusCode::OK);
    assert_eq!(
        proxy.send(with_headers(20, 8)).await.status,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    // HTTP/2 has no header count in its settings; the connection manager counts.
    let (mut h2, _conn) = h2_client(proxy.addr).await;
    let r = h2.send_request(with_headers(20, 8)).await.unwrap();
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let r = h2.send_request(with_headers(5, 8)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        up.requests(),
        2,
        "refused requests never reach the upstream"
    );
}

#[tokio::test]
async fn headers_over_max_request_headers_kb_are_answered_431() {
    let up = Upstream::fixed(200, "ok").await;
    let proxy = proxy_to(&up, |_| {}).await;
    // Envoy's default is 60 KiB.
    assert_eq!(
        proxy.send(with_headers(1, 59 * 1024)).await.status,
        StatusCode::OK
    );
    let over = proxy.send(with_headers(1, 61 * 1024)).await;
    assert_eq!(over.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(over.headers["connection"], "close");
    // Far past the limit the head does not even fit hyper's read buffer: 431 all the same.
    let far = proxy.send(with_headers(1, 200 * 1024)).await;
    assert_eq!(far.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let (mut h2, _conn) = h2_client(proxy.addr).await;
    let r = h2.send_request(with_headers(1, 61 * 1024)).await.unwrap();
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(up.requests(), 1);

    // A limit below hyper's smallest read buffer is still enforced to the byte count.
    let small = proxy_to(&up, |hcm| {
        hcm.max_request_headers_kb = Some(UInt32Value { value: 1 })
    })
    .await;
    assert_eq!(
        small.send(with_headers(1, 900)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        small.send(with_headers(1, 2048)).await.status,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_loris_client_is_cut_at_the_request_headers_timeout_while_others_are_served() {
    let up = Upstream::fixed(200, "ok").await;
    let proxy = proxy_to(&up, |hcm| hcm.request_headers_timeout = secs(10)).await;
    // Connected long before sending: the timer starts at the first byte, not at accept.
    let slow = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (mut read, mut write) = slow.into_split();
    let start = Instant::now();
    let dripping = tokio::spawn(async move {
        // 60 bytes at one a second: complete only after a minute.
        for b in b"GET / HTTP/1.1\r\nHost: svc\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n" {
            if write.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        proxy.get("/").await.status,
        StatusCode::OK,
        "others are served meanwhile"
    );
    let mut buf = [0u8; 64];
    let n = read.read(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer: {:?}", &buf[..n]);
    let cut_after = start.elapsed();
    assert!(
        cut_after >= Duration::from_secs(10) && cut_after < Duration::from_secs(12),
        "{cut_after:?}"
    );
    dripping.abort();
    assert_eq!(up.requests(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_idle_http1_connection_is_closed_at_the_idle_timeout() {
    let up = Upstream::fixed(200, "ok").await;
    let proxy = proxy_to(&up, common(|c| c.idle_timeout = secs(30))).await;
    let stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let r = sender.send_request(get("/")).await.unwrap();
    r.into_body().collect().await.unwrap();
    let idle_from = Instant::now();
    conn.await.unwrap().unwrap();
    let closed_after = idle_from.elapsed();
    assert!(
        closed_after >= Duration::from_secs(30) && closed_after < Duration::from_secs(31),
        "{closed_after:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_keep_alive_connection_outlives_minutes_of_idleness_by_default() {
    // Envoy's default idle timeout is an hour; a header-read timer must not stand in for it.
    let up = Upstream::fixed(200, "ok").await;
    let proxy = proxy_to(&up, |_| {}).await;
    let stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    for _ in 0..2 {
        let r = sender.send_request(get("/")).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.into_body().collect().await.unwrap();
        tokio::time::sleep(Duration::from_secs(600)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn an_idle_http2_connection_gets_goaway_at_the_idle_timeout() {
    let up = Upstream::fixed(200, "ok").await;
    let proxy = proxy_to(&up, common(|c| c.idle_timeout = secs(30))).await;
    let (mut h2, conn) = h2_client(proxy.addr).await;
    let r = h2.send_request(get("/")).await.unwrap();
    r.into_body().collect().await.unwrap();
    let idle_from = Instant::now();
    conn.await.unwrap().unwrap();
    assert!(idle_from.elapsed() >= Duration::from_secs(30));
}

/// An upstream that answers after `delay`.
async fn slow_upstream(delay: Duration) -> Upstream {
    Upstream::start(move |_, _| async move {
        tokio::time::sleep(delay).await;
        respond(200, "slow")
    })
    .await
}

async fn until_seen(up: &Upstream, n: usize) {
    while up.requests() < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn draining_finishes_in_flight_http1_requests_with_connection_close() {
    let up = slow_upstream(Duration::from_secs(2)).await;
    let proxy = proxy_to(&up, |_| {}).await;
    let stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let in_flight = tokio::spawn(async move { sender.send_request(get("/")).await });
    until_seen(&up, 1).await;
    proxy.ctx.draining.send(true).unwrap();
    let r = in_flight.await.unwrap().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["connection"], "close");
    assert_eq!(r.into_body().collect().await.unwrap().to_bytes(), "slow");
    conn.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn draining_sends_goaway_on_http2_after_in_flight_streams_finish() {
    let up = slow_upstream(Duration::from_secs(2)).await;
    let proxy = proxy_to(&up, |_| {}).await;
    let (mut h2, conn) = h2_client(proxy.addr).await;
    let mut second = h2.clone();
    let in_flight = tokio::spawn(async move { h2.send_request(get("/")).await });
    until_seen(&up, 1).await;
    proxy.ctx.draining.send(true).unwrap();
    let r = in_flight.await.unwrap().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.into_body().collect().await.unwrap().to_bytes(), "slow");
    // The GOAWAY ends the connection; no new stream is accepted on it.
    conn.await.unwrap().unwrap();
    assert!(second.send_request(get("/")).await.is_err());
    assert_eq!(up.requests(), 1);
}

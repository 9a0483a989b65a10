//! The pool's HTTP/2 connections against an upstream that limits streams, sends GOAWAY and
//! refuses streams.

use super::super::*;
use crate::test_h2_upstream::{H2Upstream, Script};
use http_body_util::BodyExt;

fn pool(addr: std::net::SocketAddr) -> Arc<HostPool> {
    HostPool::new(
        EndpointAddress::Socket(addr),
        UpstreamProtocol::Http2,
        Arc::new(Limits::new(
            crate::config::CircuitBreakers::default(),
            ConnectionOptions::default(),
            Arc::default(),
        )),
    )
}

fn request(wait_for: Option<usize>) -> http::Request<ProxyBody> {
    let mut req = http::Request::get("http://up/");
    if let Some(n) = wait_for {
        req = req.header("x-wait-for", n);
    }
    req.body(ProxyBody::Empty).unwrap()
}

async fn body(pool: &Arc<HostPool>, req: http::Request<ProxyBody>) -> String {
    let resp = pool
        .send(req, Duration::from_secs(5))
        .await
        .expect("a response");
    let bytes = resp.into_body().collect().await.expect("a body").to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn a_connection_at_the_peers_stream_limit_gets_a_sibling() {
    let up = H2Upstream::start(Script::MaxStreams(1)).await;
    let pool = pool(up.addr);
    // Two exchanges in turn: by the second, the peer's SETTINGS (limit 1) have been read.
    for _ in 0..2 {
        assert_eq!(body(&pool, request(None)).await, "ok");
    }
    assert_eq!(up.connections(), 1);
    // Two requests that each wait for the other: on one connection limited to one stream,
    // the second would wait behind the first, and both would answer "alone".
    let (a, b) = tokio::join!(body(&pool, request(Some(2))), body(&pool, request(Some(2))));
    assert_eq!((a.as_str(), b.as_str()), ("together", "together"));
    assert_eq!(up.connections(), 2);
}

#[tokio::test]
async fn a_connection_that_sent_goaway_is_never_picked_again_and_its_stream_finishes() {
    let up = H2Upstream::start(Script::GoAwayOnSecond).await;
    let pool = pool(up.addr);
    let held = tokio::spawn({
        let pool = pool.clone();
        async move { body(&pool, request(None)).await }
    });
    // Wait (bounded) for the held request to reach the server, so the next one shares its
    // connection.
    tokio::time::timeout(Duration::from_secs(10), async {
        while up.streams().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the first request reached the server");
    // This one makes the server send GOAWAY; its answer comes after the GOAWAY on the wire.
    assert_eq!(body(&pool, request(None)).await, "ok");
    // The connection is still open (the held stream), but said it is going away.
    for _ in 0..3 {
        assert_eq!(body(&pool, request(None)).await, "ok");
    }
    let streams = up.streams();
    assert_eq!(streams[..2], [(0, 1), (0, 3)]);
    assert!(
        streams[2..].iter().all(|(conn, _)| *conn == 1),
        "{streams:?}"
    );
    assert_eq!(up.connections(), 2);
    // The stream in flight when GOAWAY came finishes normally.
    up.release();
    assert_eq!(held.await.unwrap(), "first");
}

#[tokio::test]
async fn a_refused_stream_is_reported_unprocessed_and_retires_its_connection() {
    let up = H2Upstream::start(Script::RefuseFirst).await;
    let pool = pool(up.addr);
    match pool.send(request(None), Duration::from_secs(5)).await {
        Err(SendError::Reset(e)) => assert!(unprocessed(&e), "{e:?}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(resp) => panic!("unexpected response {}", resp.status()),
    }
    assert_eq!(body(&pool, request(None)).await, "ok");
    assert_eq!(up.streams(), [(0, 1), (1, 1)]);
}

fn pool_with(
    addr: std::net::SocketAddr,
    breakers: crate::config::CircuitBreakers,
    max_concurrent_streams: u32,
) -> Arc<HostPool> {
    let options = ConnectionOptions {
        http2: crate::config::UpstreamHttp2 {
            max_concurrent_streams,
            ..Default::default()
        },
        ..Default::default()
    };
    HostPool::new(
        EndpointAddress::Socket(addr),
        UpstreamProtocol::Http2,
        Arc::new(Limits::new(breakers, options, Arc::default())),
    )
}

#[tokio::test]
async fn a_connection_at_the_clusters_stream_limit_gets_a_sibling() {
    // The peer allows many streams; the cluster's `max_concurrent_streams` allows one.
    let up = H2Upstream::start(Script::MaxStreams(100)).await;
    let pool = pool_with(up.addr, Default::default(), 1);
    let (a, b) = tokio::join!(body(&pool, request(Some(2))), body(&pool, request(Some(2))));
    assert_eq!((a.as_str(), b.as_str()), ("together", "together"));
    assert_eq!(up.connections(), 2);
}

#[tokio::test]
async fn over_the_connection_limit_a_request_waits_for_a_stream_below_the_clusters_limit() {
    let up = H2Upstream::start(Script::GoAwayOnSecond).await;
    let breakers = crate::config::CircuitBreakers {
        max_connections: 1,
        ..Default::default()
    };
    let pool = pool_with(up.addr, breakers, 1);
    let held = tokio::spawn({
        let pool = pool.clone();
        async move { body(&pool, request(None)).await }
    });
    tokio::time::timeout(Duration::from_secs(10), async {
        while up.streams().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the first request reached the server");
    let second = tokio::spawn({
        let pool = pool.clone();
        async move { body(&pool, request(None)).await }
    });
    // The second request is pending: the one connection carries the cluster's one stream and
    // no other connection may be opened.
    tokio::time::timeout(Duration::from_secs(10), async {
        while pool.limits.pending.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the second request waits");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(up.streams().len(), 1, "sent past the stream limit");
    // The first response frees the stream; the second request then goes on the same
    // connection.
    up.release();
    assert_eq!(held.await.unwrap(), "first");
    assert_eq!(second.await.unwrap(), "ok");
    assert_eq!(up.streams(), [(0, 1), (0, 3)]);
    assert_eq!(up.connections(), 1);
}

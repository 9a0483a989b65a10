//! Timeouts: a hung upstream costs a timer. These run on tokio's paused clock: the upstream
//! never answers, so the only way forward is the proxy's own timer, which the clock reaches
//! without waiting.

use super::harness::*;
use crate::test_fixtures::istio_default_retry;
use std::time::Duration;
use xds_protos::pb::envoy::config::route::v3::{route_action, RetryPolicy};
use xds_protos::pb::google::protobuf::{Duration as ProtoDuration, UInt32Value};

fn millis(ms: i32) -> ProtoDuration {
    ProtoDuration {
        seconds: 0,
        nanos: ms * 1_000_000,
    }
}

async fn hung() -> Upstream {
    Upstream::start(|_, _| async move {
        std::future::pending::<()>().await;
        respond(200, "never")
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_route_timeout_answers_504_upstream_request_timeout() {
    let up = hung().await;
    let vh = vhost(vec![route_to("svc", |_, ra| {
        ra.timeout = Some(millis(250))
    })]);
    let proxy = TestProxy::start(vh, vec![], vec![cluster("svc", &[up.addr])]).await;
    let start = tokio::time::Instant::now();
    let reply = proxy.get("/").await;
    assert_eq!(reply.status, 504);
    assert_eq!(reply.body, "upstream request timeout");
    assert!(start.elapsed() >= Duration::from_millis(250));
    let stats = &proxy.ctx.snapshot.load().clusters["svc"].runtime.stats;
    let count = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(count(&stats.rq_timeout), 1);
    assert_eq!(count(&stats.rq_per_try_timeout), 0);
}

#[tokio::test(start_paused = true)]
async fn the_caller_can_shorten_the_timeout_by_header() {
    let up = hung().await;
    let vh = vhost(vec![route_to("svc", |_, ra| ra.timeout = Some(millis(0)))]);
    // Only an internal caller's timeout headers survive the connection manager.
    let proxy = TestProxy::start_with(
        vh,
        vec![],
        vec![cluster("svc", &[up.addr])],
        loopback_is_internal,
    )
    .await;
    let mut req = get("/");
    req.headers_mut()
        .insert("x-envoy-upstream-rq-timeout-ms", "100".parse().unwrap());
    let reply = proxy.send(req).await;
    assert_eq!(reply.status, 504);
    assert!(!up.seen()[0]
        .headers
        .contains_key("x-envoy-upstream-rq-timeout-ms"));
    assert_eq!(
        up.seen()[0].headers["x-envoy-expected-rq-timeout-ms"],
        "100"
    );
}

#[tokio::test(start_paused = true)]
async fn grpc_timeout_is_honoured_when_the_route_says_so() {
    let up = hung().await;
    let vh = vhost(vec![route_to("svc", |_, ra| {
        ra.timeout = Some(millis(0));
        ra.max_stream_duration = Some(route_action::MaxStreamDuration {
            grpc_timeout_header_max: Some(millis(0)),
            ..Default::default()
        });
    })]);
    let proxy = TestProxy::start(vh, vec![], vec![cluster("svc", &[up.addr])]).await;
    let mut req = get("/");
    req.headers_mut()
        .insert("grpc-timeout", "300m".parse().unwrap());
    let start = tokio::time::Instant::now();
    assert_eq!(proxy.send(req).await.status, 504);
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn per_try_timeouts_are_retried_until_the_retries_run_out() {
    let up = hung().await;
    let retry = RetryPolicy {
        retry_on: "5xx".into(),
        num_retries: Some(UInt32Value { value: 2 }),
        per_try_timeout: Some(millis(100)),
        ..Default::default()
    };
    let vh = vhost(vec![route_to("svc", |_, ra| {
        ra.timeout = Some(millis(0));
        ra.retry_policy = Some(retry);
    })]);
    let proxy = TestProxy::start(vh, vec![], vec![cluster("svc", &[up.addr])]).await;
    let reply = proxy.get("/").await;
    assert_eq!(reply.status, 504);
    assert_eq!(up.requests(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_route_timeout_bounds_every_retry_together() {
    let up = hung().await;
    let vh = vhost(vec![route_to("svc", |_, ra| {
        ra.timeout = Some(millis(150));
        ra.retry_policy = Some(RetryPolicy {
            per_try_timeout: Some(millis(100)),
            num_retries: Some(UInt32Value { value: 5 }),
            ..istio_default_retry()
        });
    })]);
    let proxy = TestProxy::start(vh, vec![], vec![cluster("svc", &[up.addr])]).await;
    let start = tokio::time::Instant::now();
    let reply = proxy.get("/").await;
    assert_eq!(reply.status, 504);
    assert!(
        start.elapsed() < Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_upstream_meets_the_stream_idle_timeout() {
    let up = hung().await;
    let vh = vhost(vec![route_to("svc", |_, ra| {
        ra.timeout = Some(millis(0));
        ra.idle_timeout = Some(ProtoDuration {
            seconds: 2,
            nanos: 0,
        });
    })]);
    let proxy = TestProxy::start(vh, vec![], vec![cluster("svc", &[up.addr])]).await;
    let reply = proxy.get("/").await;
    assert_eq!(reply.status, 408);
}

#[tokio::test(start_paused = true)]
async fn a_slow_upload_is_not_idle() {
    use bytes::Bytes;
    use http_body_util::StreamBody;
    let up = Upstream::start(|_, seen| async move {
        let mut r = respond(200, "");
        *r.body_mut() = http_body_util::Full::new(seen.body.clone());
        r
    })
    .await;
    let vh = vhost(vec![route_to("svc", |_, ra| {
        ra.timeout = Some(millis(0));
        ra.idle_timeout = Some(ProtoDuration {
            seconds: 2,
            nanos: 0,
        });
    })]);
    let proxy = TestProxy::start(vh, vec![], vec![cluster("svc", &[up.addr])]).await;
    // Five chunks a second apart: five seconds in all, never two without a byte.
    let (tx, rx) =
        tokio::sync::mpsc::channel::<Result<hyper::body::Frame<Bytes>, std::io::Error>>(1);
    tokio::spawn(async move {
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = tx
                .send(Ok(hyper::body::Frame::data(Bytes::from_static(b"chunk"))))
                .await;
        }
    });
    let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    let req = http::Request::post("http://svc/upload")
        .header("host", "svc")
        .body(body)
        .unwrap();
    let stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    use http_body_util::BodyExt;
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"chunkchunkchunkchunkchunk");
}

#[tokio::test(start_paused = true)]
async fn a_body_that_stalls_is_cut_at_the_route_timeout() {
    use bytes::Bytes;
    use http_body_util::BodyExt;
    // Headers and a first chunk at once, then nothing: the response has begun, so the
    // timeout can only cut the body (the client sees the stream end in error).
    let (tx, rx) =
        tokio::sync::mpsc::channel::<Result<hyper::body::Frame<Bytes>, std::io::Error>>(1);
    tx.send(Ok(hyper::body::Frame::data(Bytes::from_static(b"partial"))))
        .await
        .unwrap();
    let rx = std::sync::Arc::new(std::sync::Mutex::new(Some(rx)));
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = tcp.accept().await.unwrap();
        let svc = hyper::service::service_fn(move |_req| {
            let body = rx.lock().unwrap().take().expect("one request");
            let body =
                http_body_util::StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(body));
            async move { Ok::<_, std::convert::Infallible>(http::Response::new(body)) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
            .await;
    });
    let vh = vhost(vec![route_to("svc", |_, ra| {
        ra.timeout = Some(millis(500))
    })]);
    let proxy = TestProxy::start(vh, vec![], vec![cluster("svc", &[addr])]).await;
    let stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let resp = sender.send_request(get("/")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let start = tokio::time::Instant::now();
    assert!(resp.into_body().collect().await.is_err(), "the body is cut");
    assert!(start.elapsed() < Duration::from_secs(1));
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn an_external_callers_timeout_header_is_removed_and_ignored() {
    let up = hung().await;
    let vh = vhost(vec![route_to("svc", |_, ra| {
        ra.timeout = Some(millis(300))
    })]);
    let proxy = TestProxy::start(vh, vec![], vec![cluster("svc", &[up.addr])]).await;
    let mut req = get("/");
    req.headers_mut()
        .insert("x-envoy-upstream-rq-timeout-ms", "100".parse().unwrap());
    let start = tokio::time::Instant::now();
    assert_eq!(proxy.send(req).await.status, 504);
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        up.seen()[0].headers["x-envoy-expected-rq-timeout-ms"],
        "300"
    );
}

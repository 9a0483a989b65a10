use super::harness::*;
use crate::test_fixtures::istio_default_retry;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use xds_protos::pb::envoy::config::route::v3::RetryPolicy;

async fn proxy_with(upstreams: &[&Upstream], retry: Option<RetryPolicy>) -> TestProxy {
    let hosts: Vec<_> = upstreams.iter().map(|u| u.addr).collect();
    let mut vh = vhost(vec![route_to("svc", |_, ra| ra.retry_policy = retry)]);
    vh.include_request_attempt_count = true;
    TestProxy::start(vh, vec![], vec![cluster("svc", &hosts)]).await
}

#[tokio::test]
async fn istio_default_hides_one_503_and_counts_attempts() {
    let up = Upstream::start(|n, _| async move {
        if n == 0 {
            respond(503, "busy")
        } else {
            respond(200, "ok")
        }
    })
    .await;
    let proxy = proxy_with(&[&up], Some(istio_default_retry())).await;
    let reply = proxy.get("/").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "ok");
    let seen = up.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].headers["x-envoy-attempt-count"], "1");
    assert_eq!(seen[1].headers["x-envoy-attempt-count"], "2");
}

#[tokio::test]
async fn istio_default_does_not_retry_a_500() {
    let up = Upstream::fixed(500, "broken").await;
    let proxy = proxy_with(&[&up], Some(istio_default_retry())).await;
    let reply = proxy.get("/").await;
    assert_eq!(reply.status, 500);
    assert_eq!(up.requests(), 1);
}

#[tokio::test]
async fn retries_run_out_and_the_last_answer_is_forwarded() {
    let up = Upstream::fixed(503, "still busy").await;
    let proxy = proxy_with(&[&up], Some(istio_default_retry())).await;
    let reply = proxy.get("/").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.body, "still busy");
    assert_eq!(up.requests(), 3, "one try and two retries");
}

#[tokio::test]
async fn without_a_policy_nothing_is_retried() {
    let up = Upstream::fixed(503, "busy").await;
    let proxy = proxy_with(&[&up], None).await;
    assert_eq!(proxy.get("/").await.status, 503);
    assert_eq!(up.requests(), 1);
}

#[tokio::test]
async fn a_connect_failure_is_retried_on_another_host() {
    let up = Upstream::fixed(200, "alive").await;
    let dead = dead_address().await;
    let hosts = [dead, up.addr];
    let vh = vhost(vec![route_to("svc", |_, ra| {
        ra.retry_policy = Some(istio_default_retry())
    })]);
    let proxy = TestProxy::start(vh, vec![], vec![cluster("svc", &hosts)]).await;
    for _ in 0..6 {
        let reply = proxy.get("/").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
}

#[tokio::test]
async fn a_connect_failure_without_retries_is_a_503_uf() {
    let dead = dead_address().await;
    let vh = vhost(vec![route_to("svc", |_, _| {})]);
    let proxy = TestProxy::start(vh, vec![], vec![cluster("svc", &[dead])]).await;
    let reply = proxy.get("/").await;
    assert_eq!(reply.status, 503);
    assert!(reply.body.contains("connection failure"), "{}", reply.body);
}

#[tokio::test]
async fn a_request_body_is_sent_again_on_retry() {
    let up = Upstream::start(|n, seen| async move {
        if n == 0 {
            respond(503, "busy")
        } else {
            let mut r = respond(200, "");
            *r.body_mut() = Full::new(seen.body.clone());
            r
        }
    })
    .await;
    let proxy = proxy_with(&[&up], Some(istio_default_retry())).await;
    let payload = "x".repeat(10_000);
    let req = Request::post("http://svc/upload")
        .header("host", "svc")
        .body(Full::new(Bytes::from(payload.clone())))
        .unwrap();
    let reply = proxy.send(req).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, payload);
    assert_eq!(up.requests(), 2);
}

#[tokio::test]
async fn grpc_unavailable_in_headers_is_retried() {
    let up = Upstream::start(|n, _| async move {
        let mut r = respond(200, "");
        r.headers_mut().insert(
            "grpc-status",
            if n == 0 { "14" } else { "0" }.parse().unwrap(),
        );
        r
    })
    .await;
    let proxy = proxy_with(&[&up], Some(istio_default_retry())).await;
    let reply = proxy.get("/").await;
    assert_eq!(reply.headers["grpc-status"], "0");
    assert_eq!(up.requests(), 2);
}

#[tokio::test]
async fn a_request_no_route_matches_is_told_which_host_it_named() {
    let up = Upstream::fixed(200, "ok").await;
    let mut vh = vhost(vec![route_to("svc", |_, _| {})]);
    vh.domains = vec!["svc".into()];
    let proxy = TestProxy::start(vh, vec![], vec![cluster("svc", &[up.addr])]).await;
    let mut req = get("/");
    *req.uri_mut() = "http://other:9080/".parse().unwrap();
    req.headers_mut()
        .insert("host", "other:9080".parse().unwrap());
    let reply = proxy.send(req).await;
    assert_eq!(reply.status, 404);
    assert!(reply.body.contains("\"other:9080\""), "{}", reply.body);
    assert!(!reply.body.contains("curl -x"), "{}", reply.body);
    // Origin-form on a proxy port: the caller probably forgot `curl -x`.
    let mut req = get("/");
    *req.uri_mut() = "/productpage".parse().unwrap();
    req.headers_mut()
        .insert("host", "127.0.0.1:15001".parse().unwrap());
    let reply = proxy.send(req).await;
    assert_eq!(reply.status, 404);
    assert!(reply.body.contains("curl -x"), "{}", reply.body);
}

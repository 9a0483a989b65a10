//! `x-request-id` in responses: Envoy returns the request's id to a caller that forced its
//! trace with `x-envoy-force-trace` (honoured from internal clients only; the test client is on
//! loopback, made internal), so the caller can look the trace up. Otherwise the response
//! carries whatever the upstream sent.

use super::harness::*;
use xds_protos::pb::envoy::config::route::v3::route_match::PathSpecifier;

fn forced(
    path: &str,
    request_id: Option<&str>,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut req = get(path);
    req.headers_mut()
        .insert("x-envoy-force-trace", "true".parse().unwrap());
    if let Some(id) = request_id {
        req.headers_mut()
            .insert("x-request-id", id.parse().unwrap());
    }
    req
}

#[tokio::test]
async fn a_forced_trace_gets_its_request_id_back() {
    let up = Upstream::start(|_, seen| {
        // This upstream answers with an id of its own when asked to.
        let own_id = seen.path == "/api/own-id";
        async move {
            let mut r = respond(200, "ok");
            if own_id {
                r.headers_mut()
                    .insert("x-request-id", "from-upstream".parse().unwrap());
            }
            r
        }
    })
    .await;
    let route = route_to("svc", |r, _| {
        r.r#match.as_mut().unwrap().path_specifier = Some(PathSpecifier::Prefix("/api".into()));
    });
    let proxy = TestProxy::start_with(
        vhost(vec![route]),
        vec![],
        vec![cluster("svc", &[up.addr])],
        loopback_is_internal,
    )
    .await;

    // The caller's own id comes back, and goes upstream with the header still on (internal).
    let reply = proxy.send(forced("/api/a", Some("trace-me-1"))).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["x-request-id"], "trace-me-1");
    let seen = &up.seen()[0];
    assert_eq!(seen.headers["x-request-id"], "trace-me-1");
    assert!(seen.headers.contains_key("x-envoy-force-trace"));

    // Without one, the id the proxy made up (the one the upstream saw) comes back.
    let reply = proxy.send(forced("/api/b", None)).await;
    let generated = &up.seen()[1].headers["x-request-id"];
    assert_eq!(generated.len(), 36, "{generated:?}");
    assert_eq!(&reply.headers["x-request-id"], generated);

    // The request's id replaces one the upstream sent.
    let reply = proxy.send(forced("/api/own-id", Some("trace-me-2"))).await;
    assert_eq!(reply.headers["x-request-id"], "trace-me-2");

    // The proxy's own answers carry it too (Envoy sets it on every response it encodes).
    let reply = proxy.send(forced("/elsewhere", Some("trace-me-3"))).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.headers["x-request-id"], "trace-me-3");
    assert_eq!(up.requests(), 3);
}

#[tokio::test]
async fn an_unforced_request_gets_no_request_id_back() {
    let up = Upstream::fixed(200, "ok").await;
    let proxy = TestProxy::start(
        vhost(vec![route_to("svc", |_, _| {})]),
        vec![],
        vec![cluster("svc", &[up.addr])],
    )
    .await;
    let mut req = get("/a");
    req.headers_mut()
        .insert("x-request-id", "not-forced".parse().unwrap());
    let reply = proxy.send(req).await;
    assert_eq!(reply.status, 200);
    assert!(
        !reply.headers.contains_key("x-request-id"),
        "{:?}",
        reply.headers
    );
    // The id still went upstream: only the response is left alone.
    assert_eq!(up.seen()[0].headers["x-request-id"], "not-forced");
}

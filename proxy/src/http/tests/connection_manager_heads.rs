//! What the connection manager's own fields do to every head: the `server` response header,
//! `always_set_request_id_in_response`, `x-forwarded-client-cert` sanitizing, path
//! normalization and host port stripping (Envoy's semantics for each, see
//! `config::http_connection::fields`).

use super::harness::*;
use xds_protos::pb::envoy::config::route::v3::route_match::PathSpecifier;
use xds_protos::pb::envoy::config::route::v3::VirtualHost;
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{
        ForwardClientCertDetails, PathWithEscapedSlashesAction, ServerHeaderTransformation,
        StripPortMode,
    },
    HttpConnectionManager,
};
use xds_protos::pb::google::protobuf::BoolValue;

/// An upstream that says who it is in `server`, and a proxy in front of it shaped by `tweak`.
async fn proxy(tweak: impl FnOnce(&mut HttpConnectionManager)) -> (Upstream, TestProxy) {
    proxy_for(vhost(vec![route_to("svc", |_, _| {})]), tweak).await
}

async fn proxy_for(
    vh: VirtualHost,
    tweak: impl FnOnce(&mut HttpConnectionManager),
) -> (Upstream, TestProxy) {
    let up = Upstream::start(|_, _| async {
        let mut r = respond(200, "ok");
        r.headers_mut()
            .insert("server", "gunicorn".parse().unwrap());
        r
    })
    .await;
    let p = TestProxy::start_with(vh, vec![], vec![cluster("svc", &[up.addr])], tweak).await;
    (up, p)
}

fn request(
    uri: &str,
    headers: &[(&'static str, &str)],
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut req = http::Request::get(uri)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(*k, v.parse().unwrap());
    }
    req
}

#[tokio::test]
async fn the_server_header_is_envoys_by_default_on_every_response() {
    let (_up, p) = proxy(|_| {}).await;
    let r = p.get("/a").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers["server"], "envoy",
        "the upstream's is overwritten"
    );
    let (_up, p) = proxy(|h| h.server_name = "istio-envoy".into()).await;
    assert_eq!(p.get("/a").await.headers["server"], "istio-envoy");
    // The proxy's own answers carry it too.
    let (_up, p) = proxy_for(
        VirtualHost {
            domains: vec!["svc".into()],
            ..vhost(vec![route_to("svc", |_, _| {})])
        },
        |_| {},
    )
    .await;
    let r = p.send(request("http://other/a", &[])).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.headers["server"], "envoy");
}

/// A route for `/none` only: `/a` gets the proxy's own 404.
fn elsewhere() -> xds_protos::pb::envoy::config::route::v3::Route {
    route_to("svc", |r, _| {
        r.r#match.as_mut().unwrap().path_specifier = Some(PathSpecifier::Prefix("/none".into()));
    })
}

#[tokio::test]
async fn append_if_absent_and_pass_through_keep_the_upstreams_server() {
    let (_up, p) = proxy(|h| {
        h.server_name = "weft".into();
        h.server_header_transformation = ServerHeaderTransformation::AppendIfAbsent as i32;
    })
    .await;
    assert_eq!(p.get("/a").await.headers["server"], "gunicorn");
    let (_up, p) = proxy(|h| {
        h.server_header_transformation = ServerHeaderTransformation::PassThrough as i32;
    })
    .await;
    assert_eq!(p.get("/a").await.headers["server"], "gunicorn");
    let (_up, p) = proxy_for(vhost(vec![elsewhere()]), |h| {
        h.server_name = "weft".into();
        h.server_header_transformation = ServerHeaderTransformation::AppendIfAbsent as i32;
    })
    .await;
    let r = p.get("/a").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.headers["server"], "weft", "none to keep: set");
    let (_up, p) = proxy_for(vhost(vec![elsewhere()]), |h| {
        h.server_header_transformation = ServerHeaderTransformation::PassThrough as i32;
    })
    .await;
    let r = p.get("/a").await;
    assert_eq!(r.status, 404);
    assert!(!r.headers.contains_key("server"), "{:?}", r.headers);
}

#[tokio::test]
async fn always_set_request_id_in_response_returns_the_id_the_upstream_saw() {
    let (up, p) = proxy(|h| h.always_set_request_id_in_response = true).await;
    let r = p
        .send(request("http://svc/a", &[("x-request-id", "mine")]))
        .await;
    assert_eq!(r.headers["x-request-id"], "mine");
    let r = p.get("/b").await;
    let generated = &up.seen()[1].headers["x-request-id"];
    assert_eq!(generated.len(), 36);
    assert_eq!(&r.headers["x-request-id"], generated);
    // Off (the default), the response carries none.
    let (_up, p) = proxy(|_| {}).await;
    let r = p
        .send(request("http://svc/a", &[("x-request-id", "mine")]))
        .await;
    assert!(!r.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn x_forwarded_client_cert_is_removed_unless_always_forwarded() {
    let xfcc = [("x-forwarded-client-cert", "By=spiffe://a;URI=spiffe://b")];
    for (mode, kept) in [
        (ForwardClientCertDetails::Sanitize, false),
        (ForwardClientCertDetails::ForwardOnly, false),
        (ForwardClientCertDetails::AppendForward, false),
        (ForwardClientCertDetails::SanitizeSet, false),
        (ForwardClientCertDetails::AlwaysForwardOnly, true),
    ] {
        let (up, p) = proxy(|h| h.forward_client_cert_details = mode as i32).await;
        assert_eq!(p.send(request("http://svc/a", &xfcc)).await.status, 200);
        let seen = up.seen()[0].headers.get("x-forwarded-client-cert").cloned();
        assert_eq!(seen.is_some(), kept, "{mode:?}: {seen:?}");
    }
}

#[tokio::test]
async fn normalize_path_routes_and_forwards_the_normalized_path() {
    let api = route_to("svc", |r, _| {
        r.r#match.as_mut().unwrap().path_specifier = Some(PathSpecifier::Prefix("/api/".into()));
    });
    let (up, p) = proxy_for(vhost(vec![api.clone()]), |h| {
        h.normalize_path = Some(BoolValue { value: true });
    })
    .await;
    let r = p.get("/public/../api/%7Eitems/./x?q=/../y").await;
    assert_eq!(r.status, 200);
    assert_eq!(up.seen()[0].path, "/api/~items/x?q=/../y");
    // An encoded NUL: 400, nothing forwarded. Something that only looks like an encoding
    // passes as it is, as through Envoy.
    let r = p.get("/api/a%00b").await;
    assert_eq!(r.status, 400);
    assert_eq!(up.requests(), 1);
    assert_eq!(p.get("/api/a%zz\\b").await.status, 200);
    assert_eq!(up.seen()[1].path, "/api/a%zz/b");
    // Without normalize_path the path is matched and forwarded as it came.
    let (up, p) = proxy_for(vhost(vec![api]), |_| {}).await;
    assert_eq!(p.get("/public/../api/x").await.status, 404);
    assert_eq!(p.get("/api/../api/x").await.status, 200);
    assert_eq!(up.seen()[0].path, "/api/../api/x");
}

#[tokio::test]
async fn merge_slashes_and_escaped_slash_actions() {
    let (up, p) = proxy(|h| {
        h.merge_slashes = true;
        h.path_with_escaped_slashes_action =
            PathWithEscapedSlashesAction::UnescapeAndForward as i32;
    })
    .await;
    assert_eq!(p.get("//a%2F%2fb//c").await.status, 200);
    assert_eq!(up.seen()[0].path, "/a/b/c");
    let (up, p) = proxy(|h| {
        h.path_with_escaped_slashes_action = PathWithEscapedSlashesAction::RejectRequest as i32;
    })
    .await;
    assert_eq!(p.get("/a%2Fb").await.status, 400);
    assert_eq!(p.get("/a/b?x=%2F").await.status, 200);
    assert_eq!(up.seen().len(), 1);
    assert_eq!(up.seen()[0].path, "/a/b?x=%2F");
    // A gRPC request is refused in gRPC's terms.
    let r = p
        .send(request(
            "http://svc/pkg.Svc%2FMethod",
            &[("content-type", "application/grpc")],
        ))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["grpc-status"], "13", "INTERNAL, as Envoy answers");
}

#[tokio::test]
async fn host_ports_are_stripped_before_routing() {
    let only_svc = || VirtualHost {
        domains: vec!["svc".into()],
        ..vhost(vec![route_to("svc", |_, _| {})])
    };
    // Envoy matches the port as sent: `svc:8080` is not `svc`.
    let (_up, p) = proxy_for(only_svc(), |_| {}).await;
    let r = p.send(request("http://svc:8080/a", &[])).await;
    assert_eq!(r.status, 404);

    let (up, p) = proxy_for(only_svc(), |h| {
        h.strip_port_mode = Some(StripPortMode::StripAnyHostPort(true));
    })
    .await;
    assert_eq!(p.send(request("http://svc:8080/a", &[])).await.status, 200);
    assert_eq!(up.seen()[0].headers["host"], "svc");

    // Matching: only the port of the listener (the proxy's own here) goes.
    let (up, p) = proxy_for(only_svc(), |h| h.strip_matching_host_port = true).await;
    let own = format!("http://svc:{}/a", p.addr.port());
    assert_eq!(p.send(request(&own, &[])).await.status, 200);
    assert_eq!(up.seen()[0].headers["host"], "svc");
    assert_eq!(p.send(request("http://svc:1/a", &[])).await.status, 404);
}

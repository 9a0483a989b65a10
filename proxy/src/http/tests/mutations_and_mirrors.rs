use super::harness::*;
use std::time::Duration;
use xds_protos::pb::envoy::config::core::v3::{
    header_value_option::HeaderAppendAction, HeaderValue, HeaderValueOption,
};
use xds_protos::pb::envoy::config::route::v3::route_action::{
    HostRewriteSpecifier, RequestMirrorPolicy,
};

fn set(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}

#[tokio::test]
async fn rewrites_and_header_mutations_reach_the_upstream_and_the_client() {
    let up = Upstream::start(|_, _| async move {
        let mut r = respond(200, "ok");
        r.headers_mut()
            .insert("x-internal", "secret".parse().unwrap());
        r
    })
    .await;
    let mut route = route_to("svc", |r, ra| {
        ra.prefix_rewrite = "/v2/".into();
        ra.host_rewrite_specifier = Some(HostRewriteSpecifier::HostRewriteLiteral(
            "ratings.internal".into(),
        ));
        r.request_headers_to_add = vec![set("x-route", "yes")];
        r.request_headers_to_remove = vec!["x-drop".into()];
        r.response_headers_to_add = vec![set("x-served-via", "weft")];
        r.response_headers_to_remove = vec!["x-internal".into()];
    });
    route.r#match.as_mut().unwrap().path_specifier = Some(
        xds_protos::pb::envoy::config::route::v3::route_match::PathSpecifier::Prefix("/v1/".into()),
    );
    let proxy =
        TestProxy::start(vhost(vec![route]), vec![], vec![cluster("svc", &[up.addr])]).await;
    let mut req = get("/v1/ratings?id=1");
    req.headers_mut().insert("x-drop", "1".parse().unwrap());
    let reply = proxy.send(req).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["x-served-via"], "weft");
    assert!(!reply.headers.contains_key("x-internal"));
    let seen = &up.seen()[0];
    assert_eq!(seen.path, "/v2/ratings?id=1");
    assert_eq!(seen.headers["host"], "ratings.internal");
    assert_eq!(seen.headers["x-route"], "yes");
    assert_eq!(seen.headers["x-envoy-original-path"], "/v1/ratings?id=1");
    assert!(!seen.headers.contains_key("x-drop"));
}

#[tokio::test]
async fn a_mirror_gets_a_shadow_copy_and_never_holds_up_the_request() {
    let main = Upstream::fixed(200, "main").await;
    // The mirror takes its time; the client must not wait for it.
    let mirror = Upstream::start(|_, _| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        respond(500, "mirror")
    })
    .await;
    let route = route_to("svc", |_, ra| {
        ra.request_mirror_policies = vec![RequestMirrorPolicy {
            cluster: "shadow".into(),
            ..Default::default()
        }];
    });
    let proxy = TestProxy::start(
        vhost(vec![route]),
        vec![],
        vec![
            cluster("svc", &[main.addr]),
            cluster("shadow", &[mirror.addr]),
        ],
    )
    .await;
    let reply = tokio::time::timeout(Duration::from_secs(10), proxy.get("/reviews"))
        .await
        .expect("the main request does not wait for the mirror");
    assert_eq!(reply.body, "main");
    // The copy arrives on its own schedule.
    let copy = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(s) = mirror.seen().first().cloned() {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the mirror receives its copy");
    assert_eq!(copy.path, "/reviews");
    assert_eq!(copy.headers["host"], "svc-shadow");
}

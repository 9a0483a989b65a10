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

/// The sample name of cluster stat `stat` of `cluster`, with one more label if given, as the
/// proxy's stats page writes it.
fn cluster_stat(stat: &str, label: Option<(&str, &str)>, cluster: &str) -> String {
    let extra = label
        .map(|(k, v)| format!("{k}=\"{v}\","))
        .unwrap_or_default();
    format!("{stat}{{{extra}cluster_name=\"{cluster}\"}}")
}

/// The value of the sample line that is exactly `series` on the proxy's stats page, 0 when the
/// page has no such line yet.
fn sample(proxy: &TestProxy, series: &str) -> u64 {
    crate::admin::prometheus(&proxy.ctx)
        .lines()
        .find_map(|l| {
            let (s, v) = l.rsplit_once(' ')?;
            (s == series).then(|| v.parse().ok())?
        })
        .unwrap_or(0)
}

/// Waits until `series` reaches `want` (a mirror is accounted in its own task, after the main
/// response), bounded by a count of scheduler turns, not by a deadline the test asserts.
async fn until(proxy: &TestProxy, series: &str, want: u64) {
    for _ in 0..20_000 {
        if sample(proxy, series) >= want {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!(
        "{series} never reached {want}:\n{}",
        crate::admin::prometheus(&proxy.ctx)
    )
}

fn mirrored_to_shadow(
    f: impl FnOnce(&mut xds_protos::pb::envoy::config::route::v3::RouteAction),
) -> Vec<xds_protos::pb::envoy::config::route::v3::Route> {
    vec![route_to("svc", |_, ra| {
        ra.request_mirror_policies = vec![RequestMirrorPolicy {
            cluster: "shadow".into(),
            ..Default::default()
        }];
        f(ra);
    })]
}

/// A proxy whose route to `svc` mirrors every request to `shadow`.
async fn mirroring(
    main: std::net::SocketAddr,
    shadow: std::net::SocketAddr,
    f: impl FnOnce(&mut xds_protos::pb::envoy::config::route::v3::RouteAction),
) -> TestProxy {
    TestProxy::start(
        vhost(mirrored_to_shadow(f)),
        vec![],
        vec![cluster("svc", &[main]), cluster("shadow", &[shadow])],
    )
    .await
}

const CODE: &str = "envoy_response_code";
const CLASS: &str = "envoy_response_code_class";

#[tokio::test]
async fn a_mirror_counts_in_the_shadow_clusters_stats_and_not_in_istios_requests() {
    let main = Upstream::fixed(200, "main").await;
    let mirror = Upstream::fixed(500, "mirror").await;
    let proxy = mirroring(main.addr, mirror.addr, |_| {}).await;
    for _ in 0..3 {
        assert_eq!(proxy.get("/reviews").await.status, 200);
    }
    let total = "envoy_cluster_upstream_rq_total";
    until(&proxy, &cluster_stat(total, None, "shadow"), 3).await;
    // Envoy's accounting: the shadow's own status, in the shadow cluster.
    let rq = "envoy_cluster_upstream_rq";
    let xx = "envoy_cluster_upstream_rq_xx";
    for (series, want) in [
        (cluster_stat(total, None, "shadow"), 3),
        (cluster_stat(rq, Some((CODE, "500")), "shadow"), 3),
        (cluster_stat(xx, Some((CLASS, "5")), "shadow"), 3),
        (cluster_stat(total, None, "svc"), 3),
        (cluster_stat(rq, Some((CODE, "500")), "svc"), 0),
    ] {
        assert_eq!(sample(&proxy, &series), want, "{series}");
    }
    assert_eq!(mirror.requests(), 3);
    // Istio's: the main requests only; the shadow is not a request the client's filter sees.
    let page = crate::admin::prometheus(&proxy.ctx);
    let requests: Vec<&str> = page
        .lines()
        .filter(|l| l.starts_with("istio_requests_total{"))
        .collect();
    assert_eq!(requests.len(), 1, "{page}");
    assert!(
        requests[0].contains("destination_service_name=\"svc\"")
            && requests[0].contains("response_code=\"200\"")
            && requests[0].ends_with(" 3"),
        "{}",
        requests[0]
    );
}

#[tokio::test]
async fn a_mirror_that_cannot_connect_counts_a_connect_failure_and_a_503() {
    let main = Upstream::fixed(200, "main").await;
    let proxy = mirroring(main.addr, dead_address().await, |_| {}).await;
    assert_eq!(proxy.get("/reviews").await.status, 200);
    let unavailable = cluster_stat("envoy_cluster_upstream_rq", Some((CODE, "503")), "shadow");
    until(&proxy, &unavailable, 1).await;
    for stat in [
        "envoy_cluster_upstream_cx_connect_fail",
        "envoy_cluster_upstream_rq_total",
    ] {
        assert_eq!(
            sample(&proxy, &cluster_stat(stat, None, "shadow")),
            1,
            "{stat}"
        );
    }
}

/// On tokio's paused clock: both upstreams hang, so the only way forward is the route's
/// timeout, which bounds the copy as it bounds the main request.
#[tokio::test(start_paused = true)]
async fn a_mirror_that_runs_out_of_time_counts_a_timeout_and_a_504() {
    let hung = || {
        Upstream::start(|_, _| async move {
            std::future::pending::<()>().await;
            respond(200, "never")
        })
    };
    let (main, mirror) = (hung().await, hung().await);
    let proxy = mirroring(main.addr, mirror.addr, |ra| {
        ra.timeout = Some(xds_protos::pb::google::protobuf::Duration {
            seconds: 0,
            nanos: 250_000_000,
        })
    })
    .await;
    assert_eq!(proxy.get("/reviews").await.status, 504);
    let timed_out = cluster_stat("envoy_cluster_upstream_rq", Some((CODE, "504")), "shadow");
    until(&proxy, &timed_out, 1).await;
    let timeouts = cluster_stat("envoy_cluster_upstream_rq_timeout", None, "shadow");
    assert_eq!(sample(&proxy, &timeouts), 1);
    assert_eq!(mirror.requests(), 1);
}

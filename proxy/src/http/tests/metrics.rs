//! Istio's request metrics through the real request path: exact counts per label set on the
//! admin page right after the requests, with the proxy's identity and the cluster's service.

use super::harness::*;
use crate::test_fixtures::{prometheus_sample, workload_metadata};
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use xds_protos::pb::envoy::config::route::v3::route_match::PathSpecifier;

const CLUSTER: &str = "outbound|9080||reviews.bookinfo.svc.cluster.local";

/// The value of the one `istio_requests_total` sample that has every label in `labels`.
fn requests_total(page: &str, labels: &[(&str, &str)]) -> u64 {
    prometheus_sample(page, "istio_requests_total", labels)
}

#[tokio::test]
async fn requests_are_counted_exactly_with_istios_labels() {
    let up = Upstream::start(|_, seen| {
        let path = seen.path.clone();
        async move {
            match path.as_str() {
                "/api/fail" => respond(500, "boom"),
                "/api/grpc" | "/api/grpc-odd" => {
                    let code = if path == "/api/grpc" { "14" } else { "99" };
                    let mut r = respond(200, "");
                    r.headers_mut()
                        .insert("content-type", "application/grpc".parse().unwrap());
                    r.headers_mut().insert("grpc-status", code.parse().unwrap());
                    r
                }
                _ => respond(200, "ok"),
            }
        }
    })
    .await;
    let route = route_to(CLUSTER, |r, _| {
        r.r#match.as_mut().unwrap().path_specifier = Some(PathSpecifier::Prefix("/api".into()));
    });
    let proxy = TestProxy::start(
        vhost(vec![route]),
        vec![],
        vec![cluster(CLUSTER, &[up.addr])],
    )
    .await;

    for _ in 0..5 {
        assert_eq!(proxy.get("/api/ok").await.status, 200);
    }
    for _ in 0..2 {
        assert_eq!(proxy.get("/api/fail").await.status, 500);
    }
    for _ in 0..3 {
        assert_eq!(proxy.get("/elsewhere").await.status, 404);
    }
    for path in ["/api/grpc", "/api/grpc-odd"] {
        let grpc = Request::post(format!("http://svc{path}"))
            .header("host", "svc")
            .header("content-type", "application/grpc")
            .body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
            .unwrap();
        assert_eq!(proxy.send(grpc).await.status, 200);
    }

    let page = weft_proxy_admin_page(&proxy);
    let service = [
        ("reporter", "source"),
        ("source_workload", "productpage-v1"),
        ("source_workload_namespace", "default"),
        ("source_app", "productpage"),
        ("source_version", "v1"),
        ("destination_service", "reviews.bookinfo.svc.cluster.local"),
        ("destination_service_name", "reviews"),
        ("destination_service_namespace", "bookinfo"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut l = service.to_vec();
        l.extend_from_slice(extra);
        l
    };
    let ok = with(&[
        ("response_code", "200"),
        ("request_protocol", "http"),
        ("response_flags", "-"),
        ("grpc_response_status", ""),
    ]);
    assert_eq!(requests_total(&page, &ok), 5);
    assert_eq!(requests_total(&page, &with(&[("response_code", "500")])), 2);
    let grpc = with(&[("request_protocol", "grpc"), ("grpc_response_status", "14")]);
    assert_eq!(requests_total(&page, &grpc), 1);
    // A code gRPC does not define counts as UNKNOWN.
    let odd = with(&[("request_protocol", "grpc"), ("grpc_response_status", "2")]);
    assert_eq!(requests_total(&page, &odd), 1);
    let no_route = [
        ("response_code", "404"),
        ("response_flags", "NR"),
        ("destination_service", "unknown"),
    ];
    assert_eq!(requests_total(&page, &no_route), 3);
    let total: usize = page
        .lines()
        .filter(|l| l.starts_with("istio_requests_total{"))
        .count();
    assert_eq!(total, 5, "{page}");

    // The histograms count the same requests, and Envoy's own stats are still on the page.
    let duration_count: u64 = page
        .lines()
        .filter(|l| l.starts_with("istio_request_duration_milliseconds_count{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(duration_count, 12);
    assert!(page.contains(&format!(
        "envoy_cluster_upstream_rq_total{{cluster_name=\"{CLUSTER}\"}} 9"
    )));
}

fn weft_proxy_admin_page(proxy: &TestProxy) -> String {
    crate::admin::prometheus(&proxy.ctx)
}

/// The value of the one sample line that is exactly `series`.
fn value_of(page: &str, series: &str) -> u64 {
    let hits: Vec<&str> = page
        .lines()
        .filter(|l| l.rsplit_once(' ').is_some_and(|(s, _)| s == series))
        .collect();
    assert_eq!(hits.len(), 1, "{series} in\n{page}");
    hits[0]
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no value in {}", hits[0]))
}

#[tokio::test]
async fn envoys_cluster_stats_count_codes_retries_and_connections_and_go_with_the_cluster() {
    let up = Upstream::start(|n, _| async move {
        if n == 0 {
            respond(503, "busy")
        } else {
            respond(200, "ok")
        }
    })
    .await;
    let route = route_to(CLUSTER, |_, ra| {
        ra.retry_policy = Some(crate::test_fixtures::istio_default_retry())
    });
    let proxy = TestProxy::start(
        vhost(vec![route]),
        vec![],
        vec![cluster(CLUSTER, &[up.addr])],
    )
    .await;
    for _ in 0..4 {
        assert_eq!(proxy.get("/").await.status, 200);
    }
    let page = weft_proxy_admin_page(&proxy);
    let c = format!("cluster_name=\"{CLUSTER}\"");
    assert_eq!(
        value_of(&page, &format!("envoy_cluster_upstream_rq_total{{{c}}}")),
        4
    );
    assert_eq!(
        value_of(
            &page,
            &format!("envoy_cluster_upstream_rq{{envoy_response_code=\"200\",{c}}}")
        ),
        4
    );
    assert_eq!(
        value_of(
            &page,
            &format!("envoy_cluster_upstream_rq_xx{{envoy_response_code_class=\"2\",{c}}}")
        ),
        4
    );
    // The first request's 503 was retried once.
    assert_eq!(
        value_of(&page, &format!("envoy_cluster_upstream_rq_retry{{{c}}}")),
        1
    );
    // Each test request opens its own downstream connection, but upstream connections are
    // pooled: at least one was opened, and none is counted twice.
    let opened = value_of(&page, &format!("envoy_cluster_upstream_cx_total{{{c}}}"));
    assert!((1..=5).contains(&opened), "{page}");
    assert_eq!(
        value_of(&page, &format!("envoy_cluster_membership_total{{{c}}}")),
        1
    );
    assert_eq!(value_of(&page, "envoy_server_live"), 1);
    assert_eq!(value_of(&page, "envoy_server_state"), 0);
    assert!(
        page.contains("# TYPE envoy_cluster_upstream_rq_total counter"),
        "{page}"
    );

    // A push without the cluster: its series are gone from the next scrape.
    proxy
        .ctx
        .snapshot
        .store(std::sync::Arc::new(crate::snapshot::Snapshot {
            complete: true,
            ..Default::default()
        }));
    let page = weft_proxy_admin_page(&proxy);
    assert!(!page.contains("envoy_cluster_"), "{page}");
    assert_eq!(value_of(&page, "envoy_server_live"), 1);
}

#[tokio::test]
async fn each_request_is_counted_under_the_workload_that_answered_it() {
    let v1 = Upstream::fixed(200, "v1").await;
    let v2 = Upstream::fixed(200, "v2").await;
    let mut c = cluster(CLUSTER, &[v1.addr, v2.addr]);
    let endpoints = &mut c.load_assignment.as_mut().unwrap().endpoints[0].lb_endpoints;
    endpoints[0].metadata = Some(workload_metadata("reviews-v1", "reviews", "v1"));
    endpoints[1].metadata = Some(workload_metadata("reviews-v2", "reviews", "v2"));
    let proxy = TestProxy::start(vhost(vec![route_to(CLUSTER, |_, _| {})]), vec![], vec![c]).await;
    for _ in 0..10 {
        assert_eq!(proxy.get("/").await.status, 200);
    }
    let page = weft_proxy_admin_page(&proxy);
    let answered = |version: &str, workload: &str| {
        requests_total(
            &page,
            &[
                ("destination_workload", workload),
                ("destination_workload_namespace", "bookinfo"),
                ("destination_app", "reviews"),
                ("destination_version", version),
                ("destination_canonical_service", "reviews"),
                ("destination_canonical_revision", version),
                ("destination_service_name", "reviews"),
            ],
        )
    };
    assert_eq!(answered("v1", "reviews-v1"), v1.requests() as u64);
    assert_eq!(answered("v2", "reviews-v2"), v2.requests() as u64);
    assert_eq!(v1.requests() + v2.requests(), 10);
    assert!(v1.requests() > 0 && v2.requests() > 0, "{page}");
}

#[tokio::test]
async fn the_connection_managers_own_stats_count_requests_codes_and_connections_by_prefix() {
    let up = Upstream::start(|_, seen| {
        let path = seen.path.clone();
        async move {
            match path.as_str() {
                "/api/fail" => respond(503, "busy"),
                _ => respond(200, "ok"),
            }
        }
    })
    .await;
    let api = route_to(CLUSTER, |r, _| {
        r.r#match.as_mut().unwrap().path_specifier = Some(PathSpecifier::Prefix("/api".into()));
    });
    let gone = route_to("outbound|80||gone.default.svc.cluster.local", |r, _| {
        r.r#match.as_mut().unwrap().path_specifier = Some(PathSpecifier::Prefix("/gone".into()));
    });
    let prefix = "outbound_0.0.0.0_9080";
    let proxy = TestProxy::start_with(
        vhost(vec![api, gone]),
        vec![],
        vec![cluster(CLUSTER, &[up.addr])],
        |hcm| {
            hcm.stat_prefix = prefix.into();
            hcm.max_request_headers_kb =
                Some(xds_protos::pb::google::protobuf::UInt32Value { value: 1 });
        },
    )
    .await;
    for _ in 0..3 {
        assert_eq!(proxy.get("/api/ok").await.status, 200);
    }
    assert_eq!(proxy.get("/api/fail").await.status, 503);
    for _ in 0..2 {
        assert_eq!(proxy.get("/elsewhere").await.status, 404);
    }
    assert_eq!(proxy.get("/gone").await.status, 503);
    // Answered before a request record exists, and still counted.
    let big = Request::get("http://svc/api/ok")
        .header("host", "svc")
        .header("x-big", "a".repeat(2048))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(proxy.send(big).await.status, 431);

    let page = weft_proxy_admin_page(&proxy);
    let p = format!("envoy_http_conn_manager_prefix=\"{prefix}\"");
    let stat = |name: &str| value_of(&page, &format!("envoy_http_{name}{{{p}}}"));
    let class = |c: &str| {
        value_of(
            &page,
            &format!("envoy_http_downstream_rq_xx{{envoy_response_code_class=\"{c}\",{p}}}"),
        )
    };
    assert_eq!(stat("downstream_rq_total"), 8);
    assert_eq!(stat("downstream_rq_http1_total"), 8);
    assert_eq!(stat("downstream_rq_completed"), 8);
    assert_eq!(stat("downstream_rq_active"), 0);
    assert_eq!(class("2"), 3);
    assert_eq!(class("4"), 3);
    assert_eq!(class("5"), 2);
    assert_eq!(stat("no_route"), 2);
    assert_eq!(stat("no_cluster"), 1);
    // One connection per request (the test client does not reuse them).
    assert_eq!(stat("downstream_cx_total"), 8);
    assert_eq!(stat("downstream_cx_http1_total"), 8);
    assert!(
        page.contains("# TYPE envoy_http_downstream_cx_active gauge\n"),
        "{page}"
    );

    // Every client closed its connection but the one answered 431 with `Connection: close`,
    // which the proxy closed.
    let ctx = &proxy.ctx;
    let stats = ctx.hcm_stats.for_prefix(prefix);
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    for _ in 0..10_000 {
        if load(&stats.downstream_cx_destroy) == 8 {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let page = weft_proxy_admin_page(&proxy);
    let stat = |name: &str| value_of(&page, &format!("envoy_http_{name}{{{p}}}"));
    assert_eq!(stat("downstream_cx_destroy"), 8);
    assert_eq!(stat("downstream_cx_destroy_remote"), 7);
    assert_eq!(stat("downstream_cx_destroy_local"), 1);
    assert_eq!(stat("downstream_cx_active"), 0);
    assert_eq!(stat("downstream_cx_http1_active"), 0);
}

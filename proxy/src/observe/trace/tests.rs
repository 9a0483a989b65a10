//! The request hooks: sampling decisions, what goes upstream, and the span's content.

use super::*;
use crate::config::{Collector, Tag, TagValue};
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::Value;

fn config(random: f64) -> Arc<TracingConfig> {
    Arc::new(TracingConfig {
        collector: Collector::Cluster {
            name: "outbound|4317||otel".into(),
            authority: None,
        },
        service_name: "pp.default".into(),
        random_sampling: random,
        client_sampling: 100.0,
        overall_sampling: 100.0,
        max_path_tag_length: 256,
        custom_tags: vec![
            Tag {
                name: "istio.canonical_service".into(),
                value: TagValue::Fixed("productpage".into()),
            },
            Tag {
                name: "user".into(),
                value: TagValue::RequestHeader {
                    name: HeaderName::from_static("x-user"),
                    default: Some("nobody".into()),
                },
            },
        ]
        .into(),
        inbound: false,
        max_queued_spans: 16,
        export_timeout: std::time::Duration::from_secs(1),
        sdk_resource_attributes: false,
    })
}

fn request(headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::get("http://reviews:9080/reviews/1?x=y");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

fn start_at(c: &Arc<TracingConfig>, req: &mut Request<()>, roll: f64) -> RequestTrace {
    start_with(
        c,
        req,
        "reviews:9080",
        "10.0.0.1:5000".parse().unwrap(),
        &HeaderValue::from_static("req-1"),
        &mut || roll,
    )
    .unwrap()
}

fn traceparent(req: &Request<()>) -> String {
    req.headers()["traceparent"].to_str().unwrap().to_string()
}

#[test]
fn no_tracing_config_means_no_trace_and_no_headers() {
    let mut req = request(&[]);
    let t = start(
        None,
        &mut req,
        "reviews:9080",
        "10.0.0.1:5000".parse().unwrap(),
        &HeaderValue::from_static("r"),
    );
    assert!(t.is_none());
    assert!(!req.headers().contains_key("traceparent"));
}

#[test]
fn a_request_without_context_starts_a_trace_sampled_by_the_rate() {
    let c = config(1.0);
    let mut req = request(&[]);
    let t = start_at(&c, &mut req, 0.5);
    assert!(!t.sampled(), "a roll of 50 is above 1 %");
    assert_eq!(t.parent_span_id(), None);
    assert_eq!(
        traceparent(&req),
        format!("00-{:032x}-{:016x}-00", t.trace_id(), t.span_id())
    );
    let mut req = request(&[]);
    let t = start_at(&c, &mut req, 0.005);
    assert!(t.sampled(), "a roll of 0.5 is below 1 %");
    assert!(traceparent(&req).ends_with("-01"));
}

#[test]
fn the_callers_decision_wins_and_its_trace_continues() {
    let c = config(0.0);
    let mut req = request(&[(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )]);
    let t = start_at(&c, &mut req, 0.99);
    assert!(t.sampled(), "sampled upstream although the rate is 0");
    assert_eq!(t.trace_id(), 0x4bf92f3577b34da6a3ce929d0e0e4736);
    assert_eq!(t.parent_span_id(), Some(0x00f067aa0ba902b7));
    assert_eq!(
        traceparent(&req),
        format!(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-{:016x}-01",
            t.span_id()
        )
    );
    assert_ne!(t.span_id(), 0x00f067aa0ba902b7);

    let c = config(100.0);
    let mut req = request(&[(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
    )]);
    assert!(
        !start_at(&c, &mut req, 0.0).sampled(),
        "not sampled upstream"
    );
}

#[test]
fn b3_is_honoured_and_rewritten() {
    let c = config(0.0);
    let mut req = request(&[
        ("x-b3-traceid", "a3ce929d0e0e4736"),
        ("x-b3-spanid", "00f067aa0ba902b7"),
        ("x-b3-sampled", "1"),
    ]);
    let t = start_at(&c, &mut req, 0.99);
    assert!(t.sampled());
    assert_eq!(t.trace_id(), 0xa3ce929d0e0e4736);
    let h = req.headers();
    assert_eq!(h["x-b3-traceid"], "a3ce929d0e0e4736");
    assert_eq!(h["x-b3-spanid"], format!("{:016x}", t.span_id()).as_str());
    assert_eq!(h["x-b3-parentspanid"], "00f067aa0ba902b7");
    assert_eq!(
        traceparent(&req),
        format!(
            "00-0000000000000000a3ce929d0e0e4736-{:016x}-01",
            t.span_id()
        )
    );
}

#[test]
fn a_stray_tracestate_is_dropped() {
    let c = config(100.0);
    let mut req = request(&[("tracestate", "vendor=1")]);
    start_at(&c, &mut req, 0.0);
    assert!(!req.headers().contains_key("tracestate"));
}

#[test]
fn client_trace_id_uses_the_client_rate() {
    let mut c = (*config(0.0)).clone();
    c.client_sampling = 100.0;
    let c = Arc::new(c);
    let mut req = request(&[("x-client-trace-id", "abc")]);
    assert!(start_at(&c, &mut req, 0.99).sampled());
    let mut req = request(&[]);
    assert!(!start_at(&c, &mut req, 0.0).sampled());
}

fn start_from(
    c: &Arc<TracingConfig>,
    req: &mut Request<()>,
    peer: &str,
    roll: f64,
) -> RequestTrace {
    start_with(
        c,
        req,
        "reviews:9080",
        peer.parse().unwrap(),
        &HeaderValue::from_static("req-1"),
        &mut || roll,
    )
    .unwrap()
}

#[test]
fn a_request_that_kept_its_force_trace_header_is_sampled_whatever_the_random_rate() {
    // Only an internal request still has the header here (`http::headers::forwarding`).
    let c = config(0.0);
    let mut req = request(&[("x-envoy-force-trace", "true")]);
    let t = start_from(&c, &mut req, "10.0.0.1:5000", 0.99);
    assert!(t.sampled());
    assert!(t.forced());
    assert!(traceparent(&req).ends_with("-01"));
    // Kept, so the next proxy on the path traces the request too.
    assert!(req.headers().contains_key("x-envoy-force-trace"));
}

#[test]
fn a_forced_trace_still_obeys_the_overall_rate_and_the_callers_decision() {
    let mut c = (*config(0.0)).clone();
    c.overall_sampling = 0.0;
    let c = Arc::new(c);
    let mut req = request(&[("x-envoy-force-trace", "1")]);
    let t = start_from(&c, &mut req, "127.0.0.1:5000", 0.0);
    assert!(t.forced());
    assert!(!t.sampled(), "the overall rate drops even a forced trace");

    // A caller that decided not to sample is followed, as Envoy's OpenTelemetry tracer
    // follows its parent's flag.
    let c = config(0.0);
    let mut req = request(&[
        ("x-envoy-force-trace", "1"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        ),
    ]);
    assert!(!start_from(&c, &mut req, "127.0.0.1:5000", 0.0).sampled());
}

#[test]
fn a_client_trace_id_that_misses_its_rate_falls_through_to_the_forced_trace() {
    let mut c = (*config(0.0)).clone();
    c.client_sampling = 0.0;
    let c = Arc::new(c);
    let mut req = request(&[("x-client-trace-id", "abc"), ("x-envoy-force-trace", "1")]);
    assert!(start_from(&c, &mut req, "192.168.1.9:5000", 0.99).sampled());
    let mut req = request(&[("x-client-trace-id", "abc")]);
    assert!(!start_from(&c, &mut req, "192.168.1.9:5000", 0.99).sampled());
}

/// Over many requests the sampled share stays within binomial bounds of the rate.
#[test]
fn the_random_rate_is_the_share_sampled() {
    let c = config(10.0);
    let n = 4000;
    let sampled = (0..n)
        .filter(|_| {
            let mut req = request(&[]);
            start(
                Some(&c),
                &mut req,
                "a",
                "10.0.0.1:1".parse().unwrap(),
                &HeaderValue::from_static("r"),
            )
            .unwrap()
            .sampled()
        })
        .count();
    // p = 0.1, sd = sqrt(n p (1-p)) = 19; 5 sd either side.
    assert!((305..=495).contains(&sampled), "{sampled} of {n}");
}

fn attr<'a>(d: &'a opentelemetry_sdk::trace::SpanData, key: &str) -> Option<&'a Value> {
    d.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

#[test]
fn the_span_has_envoys_name_tags_and_parent() {
    let c = config(100.0);
    let mut req = request(&[
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("user-agent", "curl/8"),
    ]);
    let t = start_at(&c, &mut req, 0.0);
    let start = t.start.as_ref().unwrap();
    let address = crate::config::EndpointAddress::Socket("127.0.0.1:9080".parse().unwrap());
    let end = SpanEnd {
        status: 503,
        response_flags: "UF",
        upstream_cluster: Some("outbound|9080||reviews"),
        upstream_address: Some(&address),
        operation: None,
        request_bytes: 3,
        response_bytes: 5,
        collector_hosts: &|_| None,
    };
    let d = span::span_data(
        &c,
        Some("sidecar~1"),
        t.trace_id,
        t.span_id,
        t.parent,
        start,
        &end,
    );
    assert_eq!(d.name, "egress reviews:9080");
    assert_eq!(d.span_kind, SpanKind::Client);
    assert_eq!(d.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert!(d.parent_span_is_remote);
    assert_eq!(
        d.span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert!(matches!(d.status, Status::Error { .. }));
    let s = |v: &str| Some(Value::from(v.to_string()));
    assert_eq!(attr(&d, "http.method").cloned(), s("GET"));
    assert_eq!(
        attr(&d, "http.url").cloned(),
        s("http://reviews:9080/reviews/1?x=y")
    );
    assert_eq!(attr(&d, "http.status_code").cloned(), s("503"));
    assert_eq!(attr(&d, "response_flags").cloned(), s("UF"));
    assert_eq!(
        attr(&d, "upstream_cluster").cloned(),
        s("outbound|9080||reviews")
    );
    assert_eq!(attr(&d, "upstream_address").cloned(), s("127.0.0.1:9080"));
    assert_eq!(attr(&d, "node_id").cloned(), s("sidecar~1"));
    assert_eq!(attr(&d, "guid:x-request-id").cloned(), s("req-1"));
    assert_eq!(attr(&d, "user_agent").cloned(), s("curl/8"));
    assert_eq!(attr(&d, "error").cloned(), s("true"));
    assert_eq!(
        attr(&d, "istio.canonical_service").cloned(),
        s("productpage")
    );
    assert_eq!(attr(&d, "user").cloned(), s("nobody"), "header default");
}

#[test]
fn a_route_decorator_names_the_span() {
    let c = config(100.0);
    let mut req = request(&[]);
    let t = start_at(&c, &mut req, 0.0);
    let end = SpanEnd {
        status: 200,
        response_flags: "-",
        upstream_cluster: None,
        upstream_address: None,
        operation: Some("reviews.default.svc.cluster.local:9080/*"),
        request_bytes: 0,
        response_bytes: 0,
        collector_hosts: &|_| None,
    };
    let d = span::span_data(
        &c,
        None,
        t.trace_id,
        t.span_id,
        t.parent,
        t.start.as_ref().unwrap(),
        &end,
    );
    assert_eq!(d.name, "reviews.default.svc.cluster.local:9080/*");
}

#[test]
fn the_decorator_goes_upstream_from_egress_and_renames_the_span_on_ingress() {
    let d = crate::router::Decorator {
        operation: "reviews:9080/*".into(),
        propagate: Some(HeaderValue::from_static("reviews:9080/*")),
    };
    let egress = config(100.0);
    let mut h = http::HeaderMap::new();
    propagate_decorator(Some(&egress), Some(&d), &mut h);
    assert_eq!(h["x-envoy-decorator-operation"], "reviews:9080/*");
    let mut h = http::HeaderMap::new();
    propagate_decorator(None, Some(&d), &mut h);
    assert!(h.is_empty(), "no tracing, no header (as Envoy)");

    let mut ingress = (*config(100.0)).clone();
    ingress.inbound = true;
    let ingress = Arc::new(ingress);
    let mut h = http::HeaderMap::new();
    propagate_decorator(Some(&ingress), Some(&d), &mut h);
    assert!(h.is_empty(), "inbound listeners do not send it upstream");
    let mut req = request(&[("x-envoy-decorator-operation", "caller-op")]);
    let t = start_at(&ingress, &mut req, 0.0);
    assert!(!req.headers().contains_key("x-envoy-decorator-operation"));
    let end = SpanEnd {
        status: 200,
        response_flags: "-",
        upstream_cluster: None,
        upstream_address: None,
        operation: Some("route-op"),
        request_bytes: 0,
        response_bytes: 0,
        collector_hosts: &|_| None,
    };
    let d = span::span_data(
        &ingress,
        None,
        t.trace_id,
        t.span_id,
        t.parent,
        t.start.as_ref().unwrap(),
        &end,
    );
    assert_eq!(d.name, "caller-op");
}

#[test]
fn long_urls_are_cut_at_the_tag_limit() {
    let mut c = (*config(100.0)).clone();
    c.max_path_tag_length = 20;
    c.inbound = true;
    let c = Arc::new(c);
    let mut req = request(&[]);
    let t = start_at(&c, &mut req, 0.0);
    let start = t.start.as_ref().unwrap();
    let end = SpanEnd {
        status: 200,
        response_flags: "-",
        upstream_cluster: None,
        upstream_address: None,
        operation: None,
        request_bytes: 0,
        response_bytes: 0,
        collector_hosts: &|_| None,
    };
    let d = span::span_data(&c, None, t.trace_id, t.span_id, t.parent, start, &end);
    assert_eq!(d.name, "ingress");
    assert_eq!(d.span_kind, SpanKind::Server);
    assert_eq!(
        attr(&d, "http.url").cloned(),
        Some(Value::from("http://reviews:9080/".to_string()))
    );
    assert!(attr(&d, "error").is_none());
    assert_eq!(d.status, Status::Unset);
}

/// A tracing config whose collector is a target nobody listens on, for export tests.
pub(super) fn config_for_export() -> TracingConfig {
    let mut c = (*config(100.0)).clone();
    c.collector = Collector::Target("http://127.0.0.1:9".into());
    c
}

/// A finished span.
pub(super) fn some_span() -> opentelemetry_sdk::trace::SpanData {
    let c = config(100.0);
    let mut req = request(&[]);
    let t = start_at(&c, &mut req, 0.0);
    let end = SpanEnd {
        status: 200,
        response_flags: "-",
        upstream_cluster: None,
        upstream_address: None,
        operation: None,
        request_bytes: 0,
        response_bytes: 0,
        collector_hosts: &|_| None,
    };
    span::span_data(
        &c,
        None,
        t.trace_id,
        t.span_id,
        t.parent,
        t.start.as_ref().unwrap(),
        &end,
    )
}

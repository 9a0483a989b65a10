//! Tracing end to end: a request through two proxies (client → A → B → upstream) with the mesh
//! config's OpenTelemetry provider at 100 % sampling gives one trace whose spans reach an
//! in-test OTLP gRPC receiver with the right parent links; a caller's W3C or B3 context is
//! continued, and its "not sampled" decision is kept. The same with a real Envoy.

use std::time::Duration;
use weft_e2e::client::{ProxyConn, Reply};
use weft_e2e::config::{service_entry, Mesh, Proxy};
use weft_e2e::eventually;
use weft_e2e::otlp::{OtlpReceiver, ReceivedSpan};
use weft_e2e::upstream::Echo;

/// OTLP span kind CLIENT.
const SPAN_KIND_CLIENT: i32 = 3;

/// A mesh whose weftd reads a mesh config naming `receiver`, with 100 % sampling.
fn traced_mesh(receiver: &OtlpReceiver) -> Mesh {
    let mut mesh = Mesh::new();
    let mesh_config = mesh.logs.path().join("mesh.yaml");
    std::fs::write(
        &mesh_config,
        format!(
            "extensionProviders:\n- name: otel\n  opentelemetry:\n    service: 127.0.0.1\n    port: {}\n\
             defaultProviders:\n  tracing: [otel]\n\
             defaultConfig:\n  tracing:\n    sampling: 100\n",
            receiver.addr.port()
        ),
    )
    .expect("write mesh config");
    mesh.weftd_args = vec!["--mesh-config".into(), mesh_config.display().to_string()];
    mesh
}

/// `front` is proxy B itself; A sends it there with the authority of `back`, which B routes
/// to the echo server.
fn write_chain(mesh: &Mesh, echo: &Echo, b: &Proxy) {
    mesh.write(
        "back.yaml",
        &service_entry("back", 80, "HTTP", &[(echo.port(), "v1")]),
    );
    mesh.write(
        "front.yaml",
        &format!(
            "{}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: front\n  namespace: default\nspec:\n  hosts: [front.default.svc.cluster.local]\n  http:\n  - rewrite:\n      authority: back.default.svc.cluster.local\n    route:\n    - destination:\n        host: front.default.svc.cluster.local\n",
            service_entry("front", 80, "HTTP", &[(b.outbound.port(), "v1")])
        ),
    );
}

async fn until_routed(proxy: &Proxy) {
    let outbound = proxy.outbound;
    eventually("the chain routes", Duration::from_secs(20), || async move {
        ProxyConn::new(outbound)
            .get("http://front/warmup", &[])
            .await
            .ok()
            .filter(|r| r.status == 200)
    })
    .await;
}

/// A header the upstream received, from the echo server's answer.
fn upstream_header(reply: &Reply, name: &str) -> String {
    reply.json()["headers"][name]
        .as_str()
        .unwrap_or_else(|| panic!("upstream got no {name}: {}", reply.body))
        .to_string()
}

/// (trace id, span id, flags) of a traceparent.
fn parse_traceparent(v: &str) -> (String, String, String) {
    let parts: Vec<&str> = v.split('-').collect();
    assert_eq!(parts.len(), 4, "{v}");
    (parts[1].into(), parts[2].into(), parts[3].into())
}

/// Waits for `n` spans of `trace_id`.
async fn spans_of(receiver: &OtlpReceiver, trace_id: &str, n: usize) -> Vec<ReceivedSpan> {
    eventually(
        &format!("{n} spans of trace {trace_id}"),
        Duration::from_secs(30),
        || {
            let spans = receiver.trace(trace_id);
            async move { (spans.len() >= n).then_some(spans) }
        },
    )
    .await
}

/// The two spans of a chain, A's (the root or the caller's child) and B's (A's child).
fn split_chain(spans: &[ReceivedSpan], b_span: &str) -> (ReceivedSpan, ReceivedSpan) {
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let b = spans
        .iter()
        .find(|s| s.span_id == b_span)
        .unwrap_or_else(|| panic!("no span {b_span} in {spans:#?}"))
        .clone();
    let a = spans
        .iter()
        .find(|s| s.span_id != b_span)
        .expect("A's span")
        .clone();
    (a, b)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_weft_proxies_report_one_trace_with_parent_links() {
    let receiver = OtlpReceiver::start().await;
    let echo = Echo::start("back-v1").await;
    let mut mesh = traced_mesh(&receiver);
    mesh.start_weftd().await;
    let b = mesh
        .start_proxy_with_labels("b", "default", "app=backend,version=v2")
        .await;
    let a = mesh
        .start_proxy_with_labels("a", "default", "app=frontend,version=v1")
        .await;
    write_chain(&mesh, &echo, &b);
    until_routed(&a).await;
    let mut conn = ProxyConn::new(a.outbound);

    // No context: A starts the trace, B continues it.
    let reply = conn
        .get("http://front/start?q=1", &[("user-agent", "trace-test")])
        .await
        .expect("request");
    assert_eq!(reply.status, 200);
    let (trace, b_span, flags) = parse_traceparent(&upstream_header(&reply, "traceparent"));
    assert_eq!(flags, "01", "sampled at 100 %");
    let spans = spans_of(&receiver, &trace, 2).await;
    let (a_span, b_span) = split_chain(&spans, &b_span);
    assert_eq!(a_span.parent_span_id, "", "A's span is the root");
    assert_eq!(
        b_span.parent_span_id, a_span.span_id,
        "B's parent is A's span"
    );
    assert_eq!(a_span.service, "frontend.default");
    assert_eq!(b_span.service, "backend.default");
    // Spans are named by the routes' decorators, which weftd sets as istiod does; each
    // outbound proxy sends its route's operation upstream.
    assert_eq!(a_span.name, "front.default.svc.cluster.local:80/*");
    assert_eq!(b_span.name, "back.default.svc.cluster.local:80/*");
    assert_eq!(
        upstream_header(&reply, "x-envoy-decorator-operation"),
        "back.default.svc.cluster.local:80/*"
    );
    assert_eq!(a_span.kind, SPAN_KIND_CLIENT);
    assert_eq!(a_span.attr("http.method"), Some("GET"));
    assert_eq!(a_span.attr("http.status_code"), Some("200"));
    assert_eq!(a_span.attr("http.url"), Some("http://front/start?q=1"));
    assert_eq!(a_span.attr("user_agent"), Some("trace-test"));
    assert_eq!(
        a_span.attr("upstream_cluster"),
        Some("outbound|80||front.default.svc.cluster.local")
    );
    assert_eq!(a_span.attr("response_flags"), Some("-"));
    assert_eq!(a_span.attr("istio.canonical_service"), Some("frontend"));
    assert_eq!(a_span.attr("istio.canonical_revision"), Some("v1"));
    assert_eq!(b_span.attr("istio.canonical_service"), Some("backend"));
    assert_eq!(
        b_span.attr("upstream_cluster"),
        Some("outbound|80||back.default.svc.cluster.local")
    );
    assert_eq!(
        a_span.attr("guid:x-request-id"),
        b_span.attr("guid:x-request-id"),
        "one request id along the chain"
    );
    assert!(upstream_header(&reply, "x-request-id").len() >= 32);

    // The caller's "not sampled" is kept along the chain and reports nothing; a sampled
    // request sent after it shows the exporters have caught up.
    let unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    let reply = conn
        .get("http://front/quiet", &[("traceparent", unsampled)])
        .await
        .expect("request");
    let (quiet_trace, _, flags) = parse_traceparent(&upstream_header(&reply, "traceparent"));
    assert_eq!(quiet_trace, "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(flags, "00");

    // A caller's W3C context: the proxies continue its trace.
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let reply = conn
        .get(
            "http://front/continued",
            &[("traceparent", caller), ("tracestate", "vendor=abc")],
        )
        .await
        .expect("request");
    let (trace, b_span, _) = parse_traceparent(&upstream_header(&reply, "traceparent"));
    assert_eq!(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(upstream_header(&reply, "tracestate"), "vendor=abc");
    let spans = spans_of(&receiver, &trace, 2).await;
    let (a_span, b_span) = split_chain(&spans, &b_span);
    assert_eq!(a_span.parent_span_id, "00f067aa0ba902b7");
    assert_eq!(b_span.parent_span_id, a_span.span_id);
    assert!(
        receiver
            .trace("0af7651916cd43dd8448eb211c80319c")
            .is_empty(),
        "an unsampled trace was reported"
    );

    // B3 (multi-header, 64-bit trace id): honoured and rewritten.
    let reply = conn
        .get(
            "http://front/b3",
            &[
                ("x-b3-traceid", "a3ce929d0e0e4736"),
                ("x-b3-spanid", "05e3ac9a4f6e3b90"),
                ("x-b3-sampled", "1"),
            ],
        )
        .await
        .expect("request");
    let b3_span = upstream_header(&reply, "x-b3-spanid");
    assert_eq!(upstream_header(&reply, "x-b3-traceid"), "a3ce929d0e0e4736");
    let spans = spans_of(&receiver, "0000000000000000a3ce929d0e0e4736", 2).await;
    let (a_span, b_span) = split_chain(&spans, &b3_span);
    assert_eq!(a_span.parent_span_id, "05e3ac9a4f6e3b90");
    assert_eq!(b_span.parent_span_id, a_span.span_id);
    assert_eq!(upstream_header(&reply, "x-b3-parentspanid"), a_span.span_id);

    // B3 single header.
    let reply = conn
        .get(
            "http://front/b3single",
            &[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")],
        )
        .await
        .expect("request");
    let single = upstream_header(&reply, "b3");
    let parts: Vec<&str> = single.split('-').collect();
    assert_eq!(parts[0], "80f198ee56343ba864fe8b2a57d3eff7");
    assert_eq!(parts[2], "1");
    let spans = spans_of(&receiver, "80f198ee56343ba864fe8b2a57d3eff7", 2).await;
    let (a_span, _) = split_chain(&spans, parts[1]);
    assert_eq!(a_span.parent_span_id, "e457b5a2e4d86bd1");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Envoy: set ENVOY_BIN or put envoy on PATH"]
async fn two_envoys_configured_by_weftd_report_one_trace() {
    let receiver = OtlpReceiver::start().await;
    let echo = Echo::start("back-v1").await;
    let mut mesh = traced_mesh(&receiver);
    mesh.start_weftd().await;
    let b = mesh.start_envoy("b", "default", false).await;
    let a = mesh.start_envoy("a", "default", false).await;
    write_chain(&mesh, &echo, &b);
    until_routed(&a).await;
    let mut conn = ProxyConn::new(a.outbound);

    let reply = conn.get("http://front/start", &[]).await.expect("request");
    assert_eq!(reply.status, 200);
    let (trace, b_span, flags) = parse_traceparent(&upstream_header(&reply, "traceparent"));
    assert_eq!(flags, "01");
    let spans = spans_of(&receiver, &trace, 2).await;
    let (a_span, b_span) = split_chain(&spans, &b_span);
    assert_eq!(a_span.parent_span_id, "");
    assert_eq!(b_span.parent_span_id, a_span.span_id);
    assert_eq!(a_span.service, "a.default");
    assert_eq!(a_span.name, "front.default.svc.cluster.local:80/*");
    assert_eq!(b_span.name, "back.default.svc.cluster.local:80/*");
    assert_eq!(
        upstream_header(&reply, "x-envoy-decorator-operation"),
        "back.default.svc.cluster.local:80/*"
    );
    assert_eq!(a_span.kind, SPAN_KIND_CLIENT);
    assert_eq!(a_span.attr("http.method"), Some("GET"));
    assert_eq!(a_span.attr("http.status_code"), Some("200"));
    assert_eq!(
        a_span.attr("upstream_cluster"),
        Some("outbound|80||front.default.svc.cluster.local")
    );
    assert_eq!(a_span.attr("istio.canonical_service"), Some("a"));

    // A caller's context is continued by Envoy too.
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let reply = conn
        .get("http://front/continued", &[("traceparent", caller)])
        .await
        .expect("request");
    let (trace, b_span, _) = parse_traceparent(&upstream_header(&reply, "traceparent"));
    assert_eq!(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
    let spans = spans_of(&receiver, &trace, 2).await;
    let (a_span, b_span) = split_chain(&spans, &b_span);
    assert_eq!(a_span.parent_span_id, "00f067aa0ba902b7");
    assert_eq!(b_span.parent_span_id, a_span.span_id);
}

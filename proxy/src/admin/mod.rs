//! The admin server: readiness, config dump, clusters, Prometheus stats, shutdown.
//!
//! It speaks plain HTTP/1.1 on its own address and only reads the current snapshot, so it
//! never contends with the request path.

mod dump;

use crate::body::ProxyBody;
use crate::context::ProxyContext;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tracing::{debug, info};

/// How often recorded histogram samples are folded into buckets between scrapes, which
/// bounds the memory they hold.
const METRICS_UPKEEP: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves the admin API until the process exits. `quit` is notified by `/quitquitquit`.
pub async fn serve(listener: TcpListener, ctx: Arc<ProxyContext>, quit: Arc<Notify>) {
    info!(addr = ?listener.local_addr().ok(), "admin listening");
    // Holds the context weakly, so it ends with the proxy.
    let upkeep_ctx = Arc::downgrade(&ctx);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(METRICS_UPKEEP);
        loop {
            tick.tick().await;
            let Some(ctx) = upkeep_ctx.upgrade() else {
                return;
            };
            ctx.metrics.run_upkeep();
        }
    });
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let ctx = ctx.clone();
        let quit = quit.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let ctx = ctx.clone();
                let quit = quit.clone();
                async move { Ok::<_, std::convert::Infallible>(route(&ctx, &quit, req)) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                debug!(error = %e, "admin connection error");
            }
        });
    }
}

fn route(ctx: &ProxyContext, quit: &Notify, req: Request<Incoming>) -> Response<ProxyBody> {
    match (req.method(), req.uri().path()) {
        (_, "/ready") | (_, "/healthz/ready") => {
            if ctx.is_ready() && !*ctx.draining.borrow() {
                text(StatusCode::OK, "LIVE\n".to_string())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "PRE_INITIALIZING\n".to_string(),
                )
            }
        }
        (_, "/config_dump") => json(dump::config_dump(&ctx.snapshot.load())),
        (_, "/clusters") => {
            let snap = ctx.snapshot.load();
            if req.uri().query().is_some_and(|q| q.contains("format=json")) {
                json(dump::clusters_json(&snap))
            } else {
                text(StatusCode::OK, dump::clusters_text(&snap))
            }
        }
        (_, "/stats/prometheus") => text(StatusCode::OK, prometheus(ctx)),
        (&Method::POST, "/quitquitquit") => {
            quit.notify_one();
            text(StatusCode::OK, "OK\n".to_string())
        }
        // Like Envoy's admin: a state-changing endpoint refuses GET, so a crawler or a
        // browser's prefetch cannot stop the proxy.
        (_, "/quitquitquit") => {
            let mut r = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "This operation requires a POST method.\n".to_string(),
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            r
        }
        (_, "/") => text(
            StatusCode::OK,
            "admin commands: /ready /config_dump /clusters /stats/prometheus /quitquitquit\n"
                .to_string(),
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n".to_string()),
    }
}

/// The `/stats/prometheus` page: Istio's request metrics, then Envoy's cluster and server stats.
pub fn prometheus(ctx: &ProxyContext) -> String {
    let snap = ctx.snapshot.load();
    let mut out = ctx.metrics.render();
    out.push_str("# TYPE weft_access_log_lines_dropped_total counter\n");
    let _ = writeln!(
        out,
        "weft_access_log_lines_dropped_total {}",
        ctx.access_log.dropped_lines()
    );
    let mut clusters: Vec<_> = snap.clusters.values().collect();
    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    out.push_str("# TYPE envoy_cluster_upstream_rq counter\n");
    for c in &clusters {
        for (code, n) in c.runtime.stats.codes() {
            let _ = writeln!(out, "envoy_cluster_upstream_rq{{envoy_response_code=\"{code}\",cluster_name=\"{}\"}} {n}", c.name);
        }
    }
    out.push_str("# TYPE envoy_cluster_upstream_rq_total counter\n");
    for c in &clusters {
        let _ = writeln!(
            out,
            "envoy_cluster_upstream_rq_total{{cluster_name=\"{}\"}} {}",
            c.name,
            c.runtime.stats.rq_total.load(Ordering::Relaxed)
        );
    }
    out.push_str("# TYPE envoy_cluster_upstream_cx_connect_fail counter\n");
    for c in &clusters {
        let _ = writeln!(
            out,
            "envoy_cluster_upstream_cx_connect_fail{{cluster_name=\"{}\"}} {}",
            c.name,
            c.runtime.stats.cx_connect_fail.load(Ordering::Relaxed)
        );
    }
    resilience_stats(&mut out, &clusters);
    out.push_str("# TYPE envoy_cluster_membership_healthy gauge\n");
    for c in &clusters {
        let _ = writeln!(
            out,
            "envoy_cluster_membership_healthy{{cluster_name=\"{}\"}} {}",
            c.name,
            c.healthy_hosts()
        );
    }
    out.push_str("# TYPE envoy_cluster_membership_total gauge\n");
    for c in &clusters {
        let _ = writeln!(
            out,
            "envoy_cluster_membership_total{{cluster_name=\"{}\"}} {}",
            c.name,
            c.hosts.len()
        );
    }
    out.push_str("# TYPE envoy_server_live gauge\n");
    let _ = writeln!(out, "envoy_server_live {}", u8::from(ctx.is_ready()));
    ctx.listener_stats.render_prometheus(&mut out);
    out.push_str("# TYPE envoy_http_downstream_cx_active gauge\n");
    let _ = writeln!(
        out,
        "envoy_http_downstream_cx_active {}",
        ctx.open_connections.load(Ordering::Relaxed)
    );
    out
}

/// Circuit-breaker and outlier-detection counters and gauges, under Envoy's names.
fn resilience_stats(out: &mut String, clusters: &[&std::sync::Arc<crate::upstream::Cluster>]) {
    type Stat = fn(&crate::upstream::stats::ClusterStats) -> &std::sync::atomic::AtomicU64;
    let counters: [(&str, Stat); 11] = [
        ("upstream_cx_overflow", |s| &s.cx_overflow),
        ("upstream_rq_pending_overflow", |s| &s.rq_pending_overflow),
        ("upstream_rq_retry_overflow", |s| &s.rq_retry_overflow),
        ("outlier_detection_ejections_enforced_total", |s| {
            &s.ejections_enforced_total
        }),
        ("outlier_detection_ejections_overflow", |s| {
            &s.ejections_overflow
        }),
        (
            "outlier_detection_ejections_enforced_consecutive_5xx",
            |s| &s.ejections_enforced_consecutive_5xx,
        ),
        (
            "outlier_detection_ejections_enforced_consecutive_gateway_failure",
            |s| &s.ejections_enforced_consecutive_gateway_failure,
        ),
        (
            "outlier_detection_ejections_enforced_consecutive_local_origin_failure",
            |s| &s.ejections_enforced_consecutive_local_origin_failure,
        ),
        (
            "outlier_detection_ejections_detected_consecutive_5xx",
            |s| &s.ejections_detected_consecutive_5xx,
        ),
        (
            "outlier_detection_ejections_detected_consecutive_gateway_failure",
            |s| &s.ejections_detected_consecutive_gateway_failure,
        ),
        (
            "outlier_detection_ejections_detected_consecutive_local_origin_failure",
            |s| &s.ejections_detected_consecutive_local_origin_failure,
        ),
    ];
    for (name, stat) in counters {
        let _ = writeln!(out, "# TYPE envoy_cluster_{name} counter");
        for c in clusters {
            let _ = writeln!(
                out,
                "envoy_cluster_{name}{{cluster_name=\"{}\"}} {}",
                c.name,
                stat(&c.runtime.stats).load(Ordering::Relaxed)
            );
        }
    }
    let mut gauges: Vec<(String, &str, u64)> = Vec::new();
    for c in clusters {
        let l = &c.runtime.limits;
        for (open, remaining, is_open, left) in l.gauges() {
            gauges.push((
                format!("circuit_breakers_default_{open}"),
                &c.name,
                u64::from(is_open),
            ));
            gauges.push((
                format!("circuit_breakers_default_{remaining}"),
                &c.name,
                left,
            ));
        }
        gauges.push((
            "upstream_cx_active".into(),
            &c.name,
            l.connections.load(Ordering::Relaxed),
        ));
        gauges.push((
            "upstream_rq_active".into(),
            &c.name,
            l.requests.load(Ordering::Relaxed),
        ));
        gauges.push((
            "upstream_rq_pending_active".into(),
            &c.name,
            l.pending.load(Ordering::Relaxed),
        ));
    }
    for c in clusters {
        gauges.push((
            "outlier_detection_ejections_active".into(),
            &c.name,
            c.ejected_hosts() as u64,
        ));
    }
    gauges.sort_by(|a, b| a.0.cmp(&b.0));
    let mut last = String::new();
    for (name, cluster, v) in gauges {
        if name != last {
            let _ = writeln!(out, "# TYPE envoy_cluster_{name} gauge");
            last.clone_from(&name);
        }
        let _ = writeln!(
            out,
            "envoy_cluster_{name}{{cluster_name=\"{cluster}\"}} {v}"
        );
    }
}

fn text(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json(v: serde_json::Value) -> Response<ProxyBody> {
    let body = serde_json::to_string_pretty(&v).unwrap_or_default();
    let mut r = Response::new(ProxyBody::full(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

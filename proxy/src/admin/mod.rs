//! The admin server: readiness, config dump, clusters, Prometheus stats, shutdown.
//!
//! It speaks plain HTTP/1.1 on its own address and only reads the current snapshot, so it
//! never contends with the request path.

mod dump;

use crate::body::ProxyBody;
use crate::context::ProxyContext;
use crate::envoy_stats::Page;
use crate::observe::server_stats::{ServerState, ServerView};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
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

/// The `/stats/prometheus` page: Istio's request metrics, then Envoy's own stats: those of the
/// clusters in the current snapshot (a removed cluster's series are gone), the server, the
/// HTTP connection managers and `connection_limit` filters by stat prefix, and the listeners.
pub fn prometheus(ctx: &ProxyContext) -> String {
    let snap = ctx.snapshot.load();
    let mut page = Page::default();
    for cluster in snap.clusters.values() {
        cluster.render_stats(&mut page);
    }
    let state = if *ctx.draining.borrow() {
        ServerState::Draining
    } else if ctx.is_ready() {
        ServerState::Live
    } else {
        ServerState::PreInitializing
    };
    let view = ServerView {
        state,
        downstream_connections: ctx.open_connections.load(Ordering::Relaxed) as u64,
        access_log_lines_dropped: ctx.access_log.dropped_lines(),
    };
    ctx.server_stats.render(view, &mut page);
    ctx.hcm_stats.render(&mut page);
    ctx.connection_limits.render(&mut page);
    ctx.listener_stats.render(&mut page);
    let mut out = ctx.metrics.render();
    page.render(&mut out);
    out
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

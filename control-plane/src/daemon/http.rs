//! weftd's HTTP endpoint: `/ready`, `/metrics`, `/debug/syncz`, `/debug/diagnostics`.

use super::DaemonState;
use crate::xds::status::DaemonView;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpListener;

/// How often recorded histogram samples are folded into buckets between scrapes, which
/// bounds the memory they hold when nobody scrapes.
const METRICS_UPKEEP: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn serve(listener: TcpListener, state: Arc<DaemonState>) {
    // Holds the state weakly, so it ends with the daemon.
    let upkeep_state = Arc::downgrade(&state);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(METRICS_UPKEEP);
        loop {
            tick.tick().await;
            let Some(state) = upkeep_state.upgrade() else {
                return;
            };
            state.status.metrics.run_upkeep();
        }
    });
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(route(&state, req)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn route(state: &DaemonState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/ready" => {
            if state.ready.load(Ordering::Relaxed) {
                reply(StatusCode::OK, "text/plain", "ready\n".into())
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "not ready\n".into(),
                )
            }
        }
        "/metrics" => reply(StatusCode::OK, "text/plain; version=0.0.4", metrics(state)),
        "/debug/syncz" => {
            let body = serde_json::to_string_pretty(&state.status.snapshot()).unwrap_or_default();
            reply(StatusCode::OK, "application/json", body)
        }
        "/debug/diagnostics" => {
            let diags = state
                .diagnostics
                .lock()
                .map(|d| d.clone())
                .unwrap_or_default();
            let body = serde_json::to_string_pretty(&diags).unwrap_or_default();
            reply(StatusCode::OK, "application/json", body)
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

fn metrics(state: &DaemonState) -> String {
    state.status.metrics.render(DaemonView {
        connected: state.status.connected(),
        config_errors: state.config_errors.load(Ordering::Relaxed),
        config_warnings: state.config_warnings.load(Ordering::Relaxed),
    })
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

//! weftd's HTTP endpoint: `/ready`, `/metrics`, `/debug/syncz`, `/debug/diagnostics`.

use super::DaemonState;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpListener;

pub async fn serve(listener: TcpListener, state: Arc<DaemonState>) {
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
    let c = &state.status.counters;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    metric(
        "weftd_xds_connected_proxies",
        "gauge",
        "Proxies with an open ADS stream.",
        state.status.connected() as u64,
    );
    metric(
        "weftd_xds_connections_total",
        "counter",
        "ADS streams opened.",
        c.connections_total.load(Ordering::Relaxed),
    );
    metric(
        "weftd_xds_pushes_total",
        "counter",
        "xDS responses sent.",
        c.pushes.load(Ordering::Relaxed),
    );
    metric(
        "weftd_xds_push_errors_total",
        "counter",
        "xDS responses that could not be sent.",
        c.push_errors.load(Ordering::Relaxed),
    );
    metric(
        "weftd_xds_acks_total",
        "counter",
        "xDS responses ACKed.",
        c.acks.load(Ordering::Relaxed),
    );
    metric(
        "weftd_xds_nacks_total",
        "counter",
        "xDS responses NACKed.",
        c.nacks.load(Ordering::Relaxed),
    );
    metric(
        "weftd_config_errors",
        "gauge",
        "Errors in the configuration folder now.",
        state.config_errors.load(Ordering::Relaxed) as u64,
    );
    metric(
        "weftd_config_warnings",
        "gauge",
        "Warnings about the configuration folder now.",
        state.config_warnings.load(Ordering::Relaxed) as u64,
    );
    metric(
        "weftd_config_reloads_total",
        "counter",
        "Configuration versions published.",
        state.reloads.load(Ordering::Relaxed),
    );
    let sum = c.convergence_us_sum.load(Ordering::Relaxed) as f64 / 1e6;
    let count = c.convergence_count.load(Ordering::Relaxed);
    let _ = writeln!(out, "# HELP weftd_proxy_convergence_seconds Time from a config change to a proxy's last ACK.\n# TYPE weftd_proxy_convergence_seconds summary\nweftd_proxy_convergence_seconds_sum {sum}\nweftd_proxy_convergence_seconds_count {count}");
    out
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

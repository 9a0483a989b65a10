//! weft-proxy: the Weft sidecar.

use anyhow::Context as _;
use clap::Parser;
use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tracing::info;
use weft_proxy::context::ProxyContext;
use weft_proxy::observe::access_log::AccessLogWriter;
use weft_proxy::observe::istio::{IstioMetrics, SourceIdentity};
use weft_proxy::xds::client::XdsClient;
use xds_protos::node::NodeIdentity;

/// How long a draining proxy waits for in-flight requests before it exits anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Parser, Debug)]
#[command(
    name = "weft-proxy",
    version,
    about = "The Weft sidecar: an L7 proxy configured over xDS"
)]
struct Args {
    /// The control plane's ADS address, host:port.
    #[arg(long)]
    xds_addr: String,
    /// The node id sent to the control plane, e.g. sidecar~127.0.0.1~productpage-1.default~default.svc.cluster.local
    #[arg(long)]
    node_id: String,
    /// Where the local application sends its outbound calls (the virtualOutbound listener).
    #[arg(long)]
    outbound_addr: String,
    /// The admin server's address.
    #[arg(long)]
    admin_addr: String,
    #[arg(long, default_value = "default")]
    namespace: String,
    /// The workload's name (defaults to the pod part of an Istio-style node id).
    #[arg(long)]
    workload: Option<String>,
    /// The workload's labels, k=v,k=v.
    #[arg(long, value_parser = parse_labels, default_value = "")]
    labels: BTreeMap<String, String>,
    /// Worker threads (default: the number of cores), like Envoy's --concurrency.
    #[arg(long)]
    concurrency: Option<usize>,
}

fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    s.split(',')
        .filter(|kv| !kv.trim().is_empty())
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| format!("label {kv:?} is not key=value"))
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person's terminal, never in a log file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let workers = args
        .concurrency
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    // One worker needs no work stealing: a single-threaded runtime skips its bookkeeping and
    // the cross-thread wake-ups, which is measurable per request.
    let runtime = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    }
    .context("cannot start the runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let identity = NodeIdentity {
        id: args.node_id.clone(),
        namespace: args.namespace.clone(),
        workload: args.workload.clone().unwrap_or_else(|| {
            xds_protos::node::IstioNodeId::parse(&args.node_id)
                .map(|p| p.pod)
                .unwrap_or_default()
        }),
        labels: args.labels.clone(),
        outbound_addr: Some(args.outbound_addr.clone()),
        admin_addr: Some(args.admin_addr.clone()),
    };
    // Registered before anything starts, so a SIGTERM during startup still drains cleanly.
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let source = SourceIdentity {
        workload: identity.workload.clone(),
        namespace: identity.namespace.clone(),
        app: identity.labels.get("app").cloned(),
        version: identity.labels.get("version").cloned(),
    };
    let ctx = ProxyContext::new(AccessLogWriter::stdout(), IstioMetrics::new(&source));
    let quit = Arc::new(Notify::new());

    let admin = tokio::net::TcpListener::bind(&args.admin_addr)
        .await
        .with_context(|| format!("cannot bind the admin address {}", args.admin_addr))?;
    tokio::spawn(weft_proxy::admin::serve(admin, ctx.clone(), quit.clone()));

    let node = identity.to_node(concat!("weft-proxy/", env!("CARGO_PKG_VERSION")));
    let client = XdsClient::new(args.xds_addr.clone(), node, ctx.clone());
    tokio::spawn(client.run());
    info!(node = %args.node_id, xds = %args.xds_addr, "weft-proxy started");

    tokio::select! {
        _ = sigterm.recv() => info!("SIGTERM: draining"),
        _ = tokio::signal::ctrl_c() => info!("interrupt: draining"),
        _ = quit.notified() => info!("/quitquitquit: draining"),
    }
    drain(&ctx).await;
    Ok(())
}

/// Stops accepting, lets open connections finish their in-flight requests, then returns.
async fn drain(ctx: &ProxyContext) {
    let _ = ctx.draining.send(true);
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    while ctx.open_connections.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    info!(
        left = ctx.open_connections.load(Ordering::Relaxed),
        "drained, exiting"
    );
}

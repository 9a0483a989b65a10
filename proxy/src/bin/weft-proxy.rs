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
use weft_proxy::xds::client::{Protocol, XdsClient};
use xds_protos::node::{NodeIdentity, ProxyMode};

/// Istio's `terminationDrainDuration` default.
const DEFAULT_DRAIN_TIME: &str = "5s";
/// How long the runtime may take to stop its tasks once the proxy has decided to exit.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

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
    /// The ADS protocol: `delta` (incremental: a change sends only what changed; Istio's
    /// default) or `sotw` (state of the world). A control plane without delta gets sotw.
    #[arg(long, value_enum, default_value_t = Protocol::Delta)]
    xds_protocol: Protocol,
    /// The node id sent to the control plane, e.g. sidecar~127.0.0.1~productpage-1.default~default.svc.cluster.local
    #[arg(long)]
    node_id: String,
    /// How the application's traffic reaches the proxy: `local` (it calls the proxy as an HTTP
    /// proxy at --outbound-addr) or `sidecar` (iptables redirects the pod's traffic to 15001 and
    /// 15006; see `weftctl iptables`).
    #[arg(long, value_enum, default_value_t = Mode::Local)]
    mode: Mode,
    /// Where the local application sends its outbound calls (the virtualOutbound listener).
    /// Required in local mode; a sidecar's listeners come from the control plane.
    #[arg(long, required_if_eq("mode", "local"))]
    outbound_addr: Option<String>,
    /// The pod's IP (Istio's INSTANCE_IPS), in sidecar mode; default: the IP in the node id.
    #[arg(long)]
    ip: Option<String>,
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
    /// How long a draining proxy (SIGTERM, SIGINT, POST /quitquitquit) lets in-flight requests
    /// finish before it exits: `5s`, `500ms`, `1m`.
    #[arg(long, default_value = DEFAULT_DRAIN_TIME, value_parser = parse_duration)]
    drain_time: Duration,
    /// Exit as soon as no downstream connection is open while draining, instead of waiting out
    /// the drain time. Also set by the environment variable EXIT_ON_ZERO_ACTIVE_CONNECTIONS=true
    /// (Istio's name).
    #[arg(long)]
    exit_on_zero_active_connections: bool,
    /// Refuse downstream connections past this many open at once (all listeners together,
    /// like Envoy's global downstream connection limit); refused ones are counted in
    /// downstream_global_cx_overflow. Default: no limit but the open-file limit.
    #[arg(long)]
    max_downstream_connections: Option<usize>,
    /// The DNS server (ip:port) that resolves the names of STRICT_DNS and LOGICAL_DNS
    /// clusters, asked over UDP like Envoy's c-ares resolver with `resolvers` set. Default: the
    /// system's resolver (/etc/hosts, /etc/resolv.conf).
    #[arg(long)]
    dns_resolver: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    Local,
    Sidecar,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like 5s or 500ms: {e}"))
}

/// Istio's `EXIT_ON_ZERO_ACTIVE_CONNECTIONS`, read with Go's `strconv.ParseBool` spellings.
fn exit_on_zero_from_env() -> anyhow::Result<bool> {
    const VAR: &str = "EXIT_ON_ZERO_ACTIVE_CONNECTIONS";
    let Ok(v) = std::env::var(VAR) else {
        return Ok(false);
    };
    match v.as_str() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "" | "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => anyhow::bail!("{VAR}={other:?} is not a boolean (true or false)"),
    }
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
    let mut args = Args::parse();
    args.exit_on_zero_active_connections |= exit_on_zero_from_env()?;
    weft_proxy::upstream::dns::configure(args.dns_resolver)?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person's terminal, never in a log file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match weft_proxy::listener::fd_limit::raise_to_hard_limit() {
        Ok(l) => info!(
            soft_before = l.soft_before,
            soft = l.soft,
            hard = l.hard,
            "open-file limit (RLIMIT_NOFILE)"
        ),
        Err(e) => tracing::warn!(error = %e, "keeping the open-file limit as it is"),
    }
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
    let result = runtime.block_on(run(args));
    // Connections cut at the end of the drain time must not hold the exit up.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    result
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
        outbound_addr: args.outbound_addr.clone(),
        admin_addr: Some(args.admin_addr.clone()),
        mode: match args.mode {
            Mode::Local => ProxyMode::Local,
            Mode::Sidecar => ProxyMode::Sidecar,
        },
        // Local mode's address is its outbound listener's host; a sidecar's is its pod IP.
        ip: args.ip.clone().or_else(|| {
            let from_id = xds_protos::node::IstioNodeId::parse(&args.node_id).map(|p| p.ip);
            from_id.filter(|_| args.mode == Mode::Sidecar)
        }),
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
    // Spans carry Envoy's `node_id` tag.
    ctx.tracing.set_node_id(args.node_id.clone());
    if let Some(max) = args.max_downstream_connections {
        ctx.max_downstream_connections.store(max, Ordering::Relaxed);
    }
    let quit = Arc::new(Notify::new());

    let admin = tokio::net::TcpListener::bind(&args.admin_addr)
        .await
        .with_context(|| format!("cannot bind the admin address {}", args.admin_addr))?;
    tokio::spawn(weft_proxy::admin::serve(admin, ctx.clone(), quit.clone()));

    let node = identity.to_node(concat!("weft-proxy/", env!("CARGO_PKG_VERSION")));
    let client =
        XdsClient::new(args.xds_addr.clone(), node, ctx.clone()).with_protocol(args.xds_protocol);
    tokio::spawn(client.run());
    info!(node = %args.node_id, xds = %args.xds_addr, "weft-proxy started");

    tokio::select! {
        _ = sigterm.recv() => info!("SIGTERM: draining"),
        _ = tokio::signal::ctrl_c() => info!("interrupt: draining"),
        _ = quit.notified() => info!("/quitquitquit: draining"),
    }
    drain(&ctx, args.drain_time, args.exit_on_zero_active_connections).await;
    // Spans still batched would be lost with the process.
    ctx.tracing.flush();
    Ok(())
}

/// Stops accepting, lets open connections finish their in-flight requests (HTTP/1.1 responses
/// carry `Connection: close`, HTTP/2 gets GOAWAY), and returns when `drain_time` is over, or
/// with `exit_on_zero` as soon as no connection is left.
async fn drain(ctx: &ProxyContext, drain_time: Duration, exit_on_zero: bool) {
    let _ = ctx.draining.send(true);
    info!(
        drain_time = ?drain_time,
        exit_on_zero,
        open = ctx.open_connections.load(Ordering::Relaxed),
        "draining: no longer accepting"
    );
    let deadline = tokio::time::sleep(drain_time);
    if exit_on_zero {
        tokio::select! {
            _ = no_connections_left(ctx) => info!("no active connections left"),
            _ = deadline => info!("drain time over"),
        }
    } else {
        deadline.await;
    }
    info!(
        left = ctx.open_connections.load(Ordering::Relaxed),
        "drained, exiting"
    );
}

async fn no_connections_left(ctx: &ProxyContext) {
    loop {
        let closed = ctx.connections_closed.notified();
        tokio::pin!(closed);
        // Registered before the check, so a close between the two is not missed.
        closed.as_mut().enable();
        if ctx.open_connections.load(Ordering::Acquire) == 0 {
            return;
        }
        closed.await;
    }
}

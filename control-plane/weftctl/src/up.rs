//! `weftctl up DIR`: a whole mesh on 127.0.0.1 from one config folder — weftd, a demo app and
//! a weft-proxy sidecar per local WorkloadEntry, and an ingress proxy for the user's curl.
//!
//! `plan` decides what to run (pure, unit tested); this file carries the plan out: it starts
//! weftd and waits for it, starts the rest and waits for every readiness check, shows one
//! request going through the mesh, then watches until Ctrl-C/SIGTERM (exit 0) or until a
//! child dies (its log tail is shown, the rest are stopped, exit 1).
//!
//! weftd's output passes through `up` on its way to its log file, so configuration problems
//! and reloads show in the terminal the user is looking at (`echo`). The log folder `up`
//! makes is removed on a clean exit and kept, with its path printed, when something failed.

mod config;
mod echo;
mod otlp;
mod plan;
mod supervisor;

use crate::proxy_client::ProxyClient;
use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use plan::{Plan, Process, Program};
use std::path::{Path, PathBuf};
use std::time::Duration;
use supervisor::{Died, Supervisor};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::Instant;

const POLL: Duration = Duration::from_millis(200);
/// The mesh may still be converging (endpoints pushed after listeners) when every proxy
/// reports ready, so the first request is retried for a while before `up` warns.
const SMOKE_PATIENCE: Duration = Duration::from_secs(15);

/// `weftctl up --help`'s closing section: every port and the flag that moves it.
pub const PORTS_HELP: &str = "\
Ports (all on 127.0.0.1; workload i is the i-th local WorkloadEntry by namespace and name):
  weftd xDS / HTTP              15010 / 15014       --xds-port, --http-port
  ingress proxy / its admin     15001 / 15000       --ingress-port, --ingress-admin-port
  sidecar i outbound / admin    15100+i / 15200+i   --sidecar-outbound-base, --sidecar-admin-base
  demo app i                    declared port       --app-port-base N puts app i on N+i
                                (the one in its WorkloadEntry; examples/bookinfo: 19080-19085)
A port in use is reported before anything starts.";

#[derive(clap::Args, Debug, Clone)]
pub struct UpArgs {
    /// Folder of Istio YAML (ServiceEntry, WorkloadEntry, VirtualService, DestinationRule…).
    pub dir: PathBuf,
    /// weftd's ADS port.
    #[arg(long, default_value_t = 15010)]
    pub xds_port: u16,
    /// weftd's HTTP port (/ready, debug).
    #[arg(long, default_value_t = 15014)]
    pub http_port: u16,
    /// The ingress proxy's HTTP proxy port: `curl -x http://127.0.0.1:<port> ...`.
    #[arg(long, default_value_t = 15001)]
    pub ingress_port: u16,
    /// The ingress proxy's admin port.
    #[arg(long, default_value_t = 15000)]
    pub ingress_admin_port: u16,
    /// Sidecar i (by namespace and name) gets outbound port base + i.
    #[arg(long, default_value_t = 15100)]
    pub sidecar_outbound_base: u16,
    /// Sidecar i gets admin port base + i.
    #[arg(long, default_value_t = 15200)]
    pub sidecar_admin_base: u16,
    /// Demo app i listens on base + i instead of the port its WorkloadEntry declares (weftd
    /// is told the move; the folder is not changed).
    #[arg(long)]
    pub app_port_base: Option<u16>,
    /// Where weftd and weft-proxy are (default: next to this weftctl).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Where the per-process logs go (default: a new folder under the temp dir, removed when
    /// the mesh stops cleanly). A folder given here is never removed.
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// Keep the log folder after a clean stop too (it is always kept after a failure).
    #[arg(long)]
    pub keep_logs: bool,
    /// Seconds to wait for weftd, and then for the rest, to become ready.
    #[arg(long, default_value_t = 60)]
    pub ready_timeout: u64,
    /// Trace every request and export the spans over OTLP/gRPC to HOST:PORT (a Jaeger
    /// all-in-one or an OpenTelemetry collector, e.g. 127.0.0.1:4317).
    #[arg(long, value_name = "ADDR")]
    pub otlp: Option<String>,
}

/// How the supervised part ended.
enum Outcome {
    Signal(&'static str),
    Died(Died),
    Failed(anyhow::Error),
}

/// Runs the mesh until a signal or a failure; returns the exit code.
///
/// Must run on the thread that stays alive for the whole program (the runtime's main
/// `block_on`): Linux delivers the parent-death signal when the *thread* that started a child
/// ends.
pub async fn run(args: UpArgs) -> anyhow::Result<i32> {
    // Signals first, so a Ctrl-C during startup still stops the children in order.
    let mut signals = Signals::new()?;

    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("cannot open config folder {}", args.dir.display()))?;
    let config = config::read_dir(&dir)
        .with_context(|| format!("cannot read config folder {}", dir.display()))?;
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
    let ports = plan::Ports {
        xds: args.xds_port,
        http: args.http_port,
        ingress: args.ingress_port,
        ingress_admin: args.ingress_admin_port,
        sidecar_outbound_base: args.sidecar_outbound_base,
        sidecar_admin_base: args.sidecar_admin_base,
        app_base: args.app_port_base,
    };
    let mut plan = plan::plan(&dir, &ports, &config.workloads, &config.services)?;
    if let Some(addr) = &args.otlp {
        otlp::parse_addr(addr)?;
    }
    for skipped in &plan.skipped {
        println!("not a local demo workload, skipped: {skipped}");
    }
    let bins = Binaries::find(args.bin_dir.as_deref())?;
    check_ports_free(&plan)?;
    let (log_dir, remove_logs) = match &args.log_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("weft-up-{}", std::process::id())),
            !args.keep_logs,
        ),
    };
    std::fs::create_dir_all(&log_dir)
        .with_context(|| format!("cannot create log folder {}", log_dir.display()))?;
    if let Some(addr) = &args.otlp {
        let mesh_config = otlp::write_mesh_config(&log_dir, addr)?;
        plan.control_plane.args.extend([
            "--mesh-config".to_string(),
            mesh_config.display().to_string(),
        ]);
        println!("traces: every request, exported over OTLP/gRPC to {addr}");
    }
    println!("config: {}", dir.display());
    if remove_logs {
        println!(
            "logs:   {} (removed when the mesh stops cleanly; --keep-logs keeps them)",
            log_dir.display()
        );
    } else {
        println!("logs:   {}", log_dir.display());
    }

    let mut sup = Supervisor::default();
    let timeout = Duration::from_secs(args.ready_timeout);
    let outcome = {
        let work = start_and_watch(&mut sup, &plan, &bins, &log_dir, timeout);
        tokio::select! {
            biased;
            name = signals.recv() => Outcome::Signal(name),
            outcome = work => outcome,
        }
    };
    if let Outcome::Died(died) = &outcome {
        sup.drain_output(&died.name).await;
    }
    sup.stop_all().await;
    Ok(match outcome {
        Outcome::Signal(name) => {
            println!("{name}: stopped every process");
            if remove_logs {
                if let Err(e) = std::fs::remove_dir_all(&log_dir) {
                    eprintln!(
                        "warning: cannot remove the log folder {}: {e}",
                        log_dir.display()
                    );
                }
            }
            0
        }
        Outcome::Died(died) => {
            eprintln!("{}", died.report());
            eprintln!(
                "stopped the other processes; logs are in {}",
                log_dir.display()
            );
            1
        }
        Outcome::Failed(error) => {
            eprintln!("error: {error:#}");
            eprintln!("stopped every process; logs are in {}", log_dir.display());
            1
        }
    })
}

async fn start_and_watch(
    sup: &mut Supervisor,
    plan: &Plan,
    bins: &Binaries,
    log_dir: &Path,
    timeout: Duration,
) -> Outcome {
    let ready = ReadyClient::new();
    if let Err(e) = sup.spawn(
        &plan.control_plane,
        bins.path(plan.control_plane.program),
        log_dir,
        Some(echo::weftd_line),
    ) {
        return Outcome::Failed(e);
    }
    println!("starting weftd …");
    if let Err(outcome) = wait_ready(
        sup,
        &ready,
        std::slice::from_ref(&plan.control_plane),
        timeout,
    )
    .await
    {
        return outcome;
    }
    println!("starting {} processes …", plan.mesh.len());
    for process in &plan.mesh {
        if let Err(e) = sup.spawn(process, bins.path(process.program), log_dir, None) {
            return Outcome::Failed(e);
        }
    }
    if let Err(outcome) = wait_ready(sup, &ready, &plan.mesh, timeout).await {
        return outcome;
    }
    print_table(sup, plan);
    smoke(sup, plan).await;
    println!();
    println!("Try it (Ctrl-C stops the mesh):");
    println!("{}", plan.target.curl_line());
    loop {
        tokio::time::sleep(POLL).await;
        if let Err(died) = sup.check() {
            return Outcome::Died(died);
        }
    }
}

/// Polls every process's ready URL until all answer 200, watching for deaths meanwhile.
async fn wait_ready(
    sup: &mut Supervisor,
    client: &ReadyClient,
    processes: &[Process],
    timeout: Duration,
) -> Result<(), Outcome> {
    let deadline = Instant::now() + timeout;
    let mut waiting: Vec<&Process> = processes.iter().collect();
    loop {
        sup.check().map_err(Outcome::Died)?;
        let mut still = Vec::new();
        for p in waiting {
            if !client.is_ready(&p.ready_url).await {
                still.push(p);
            }
        }
        waiting = still;
        if waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let names: Vec<String> = waiting
                .iter()
                .map(|p| format!("{} ({})", p.name, p.ready_url))
                .collect();
            return Err(Outcome::Failed(anyhow::anyhow!(
                "not ready after {}s: {}",
                timeout.as_secs(),
                names.join(", ")
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One request through the ingress proxy, to show the user the mesh answering.
async fn smoke(sup: &mut Supervisor, plan: &Plan) {
    let client = ProxyClient::new(plan.target.proxy, Duration::from_secs(5));
    let url = match plan.target.url.parse() {
        Ok(url) => url,
        Err(e) => {
            eprintln!(
                "warning: cannot build the first request {}: {e}",
                plan.target.url
            );
            return;
        }
    };
    let deadline = Instant::now() + SMOKE_PATIENCE;
    let mut last = String::new();
    while Instant::now() < deadline {
        if sup.check().is_err() {
            return; // The watch loop reports it.
        }
        match client.get(&url, &http::HeaderMap::new()).await {
            Ok(answer) if answer.status.is_success() => {
                println!();
                println!(
                    "GET {} via {} -> {}",
                    plan.target.url, plan.target.proxy, answer.status
                );
                println!("{}", summarize(&answer.body));
                return;
            }
            Ok(answer) => {
                last = format!(
                    "{}: {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body).trim()
                )
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "warning: GET {} through the ingress proxy did not succeed within {}s (last: {last}); \
         the processes keep running, see their logs",
        plan.target.url,
        SMOKE_PATIENCE.as_secs()
    );
}

/// Who answered, from the demo apps' `served_by` fields.
fn summarize(body: &[u8]) -> String {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::from_utf8_lossy(body).chars().take(400).collect();
    };
    let mut parts = Vec::new();
    let mut add = |label: &str, v: &serde_json::Value| {
        if let Some(s) = v["served_by"].as_str() {
            parts.push(format!("{label} {s}"));
        } else if let Some(e) = v["error"].as_str() {
            parts.push(format!("{label} error: {e}"));
        }
    };
    add("served by", &json);
    add("details from", &json["details"]);
    add("reviews from", &json["reviews"]);
    add("ratings from", &json["reviews"]["ratings"]);
    parts.join(", ")
}

fn print_table(sup: &Supervisor, plan: &Plan) {
    let rows: Vec<Vec<String>> = std::iter::once(&plan.control_plane)
        .chain(plan.mesh.iter())
        .map(|p| {
            let pid = sup
                .running
                .iter()
                .find(|r| r.name == p.name)
                .and_then(|r| r.pid)
                .map(|pid| pid.to_string())
                .unwrap_or_default();
            let listens = p
                .listens
                .iter()
                .map(|(what, addr)| format!("{what} {addr}"))
                .collect::<Vec<_>>()
                .join(", ");
            vec![p.name.clone(), p.role.label().to_string(), pid, listens]
        })
        .collect();
    println!();
    print!(
        "{}",
        crate::table::render(&["PROCESS", "ROLE", "PID", "LISTENS"], &rows)
    );
    // Where to point Prometheus (deploy/observability/prometheus.yml has these jobs).
    let weftd_http = plan
        .control_plane
        .listens
        .iter()
        .find(|(what, _)| *what == "http")
        .map(|(_, addr)| addr);
    println!();
    println!("metrics: every proxy's admin address serves /stats/prometheus (Istio's and Envoy's)");
    if let Some(addr) = weftd_http {
        println!("         weftd serves http://{addr}/metrics (pilot_*)");
    }
}

/// A port already taken (often by another `weftctl up`) is reported before anything starts,
/// with its owner in the plan, rather than as a child dying with "address in use".
fn check_ports_free(plan: &Plan) -> anyhow::Result<()> {
    let busy: Vec<String> = std::iter::once(&plan.control_plane)
        .chain(plan.mesh.iter())
        .flat_map(|p| p.listens.iter().map(move |(what, addr)| (p, what, addr)))
        .filter(|(_, _, addr)| std::net::TcpListener::bind(addr).is_err())
        .map(|(p, what, addr)| format!("{addr} ({} {what})", p.name))
        .collect();
    if busy.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "ports already in use: {}. Is another `weftctl up` running? Stop it, or move the \
         mesh's ports: --xds-port, --http-port, --ingress-port, --ingress-admin-port, \
         --sidecar-outbound-base, --sidecar-admin-base, --app-port-base (see `weftctl up --help`)",
        busy.join(", ")
    )
}

struct Binaries {
    weftd: PathBuf,
    weft_proxy: PathBuf,
    demo_app: PathBuf,
}

impl Binaries {
    fn find(bin_dir: Option<&Path>) -> anyhow::Result<Binaries> {
        let me = std::env::current_exe().context("cannot find the weftctl executable")?;
        let dir = match bin_dir {
            Some(d) => d.to_path_buf(),
            None => me
                .parent()
                .map(Path::to_path_buf)
                .context("weftctl's executable has no parent folder")?,
        };
        let need = |name: &str| -> anyhow::Result<PathBuf> {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                anyhow::bail!(
                    "{name} not found in {}: {}",
                    dir.display(),
                    build_hint(&dir)
                )
            }
        };
        Ok(Binaries {
            weftd: need("weftd")?,
            weft_proxy: need("weft-proxy")?,
            demo_app: need("weft-demo-app")?,
        })
    }

    fn path(&self, program: Program) -> &Path {
        match program {
            Program::Weftd => &self.weftd,
            Program::WeftProxy => &self.weft_proxy,
            Program::DemoApp => &self.demo_app,
        }
    }
}

/// What builds weftd and weft-proxy into `dir`: the cargo profile is the folder's name, so
/// the hint names the command for the profile this weftctl came from.
fn build_hint(dir: &Path) -> String {
    let command = match dir.file_name().and_then(|n| n.to_str()) {
        Some("release") => "cargo build --release",
        Some("debug") => "cargo build",
        _ => {
            return "build every binary with `cargo build --release` at the workspace root and \
                    pass --bin-dir target/release, or pass --bin-dir with the folder that holds \
                    weftd, weft-proxy and weft-demo-app"
                .to_string()
        }
    };
    format!(
        "run `{command}` at the workspace root (it builds weftd, weft-proxy, weft-demo-app \
         and weftctl together), or pass --bin-dir with the folder that holds them"
    )
}

struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// GETs readiness URLs; anything but a 200 within a second counts as not ready yet.
struct ReadyClient {
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl ReadyClient {
    fn new() -> ReadyClient {
        ReadyClient {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn is_ready(&self, url: &str) -> bool {
        let Ok(uri) = url.parse() else { return false };
        matches!(
            tokio::time::timeout(Duration::from_secs(1), self.client.get(uri)).await,
            Ok(Ok(response)) if response.status() == http::StatusCode::OK
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_hint_names_the_profile_weftctl_runs_from() {
        assert!(build_hint(Path::new("/src/weft/target/release"))
            .starts_with("run `cargo build --release` at the workspace root"));
        assert!(build_hint(Path::new("/src/weft/target/debug"))
            .starts_with("run `cargo build` at the workspace root"));
        assert!(build_hint(Path::new("/usr/local/bin")).contains("--bin-dir"));
    }
}

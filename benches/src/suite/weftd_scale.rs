//! weftd at scale (issue 9), two loads, state of the world and delta:
//!
//! - `weftd-scale`: 1,000 services, each a ServiceEntry, a DestinationRule with two subsets
//!   and a VirtualService (Istio's documented test load), with a growing number of simulated
//!   proxies of one class (the curve 1, 10, 100, 500, 2,000);
//! - `xds-scale`: 10,000 ServiceEntries and 5,000 VirtualServices with N proxies (500 in full
//!   mode), which also times loading the folder.
//!
//! For each: weftd's RSS, the time to connect and configure every proxy, how long one change
//! takes to reach (be ACKed by) every proxy — p99 over proxies — and weftd's CPU per change,
//! which should not grow with the number of proxies in one class beyond what sending costs.
//! Both tables come from one measurement, [`measure`].
//!
//! `sidecar-scale` (with `weftd-scale`) is the other side of the same mesh: one real weft-proxy
//! and one real Envoy, each configured by weftd with the 1,000 services, and what holding
//! them and taking a change costs each.

use super::xds::{ads_run, one_push, start_weftd, AdsLoad};
use super::Ctx;
use crate::configs;
use crate::contenders::{self, Kind, Upstream};
use crate::procstat::{cpu_seconds, mib, rss_bytes, PeakRss};
use crate::report::{Column, Table, Unit};
use std::time::Duration;

pub const SERVICES: usize = 1_000;
const BIG_SERVICES: usize = 10_000;
const BIG_VIRTUAL_SERVICES: usize = 5_000;
/// The HTTP/2 frame size Envoy accepts (the protocol's default).
const ENVOY_MAX_FRAME_SIZE: u32 = 16_384;

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// What one run of weftd with N simulated proxies measured.
struct Measured {
    load_secs: f64,
    rss_loaded: f64,
    rss_peak: f64,
    connect_secs: f64,
    cpu_connect: f64,
    /// Medians over the changes.
    change_p99_ms: Option<f64>,
    change_last_ms: Option<f64>,
    cpu_per_change: Option<f64>,
    timeouts: usize,
    changes: usize,
}

impl Measured {
    fn note(&self, pushes: usize) -> String {
        if self.timeouts > 0 {
            format!("{} of {pushes} changes timed out", self.timeouts)
        } else {
            format!("{} changes", self.changes)
        }
    }
}

/// Starts weftd on a folder holding `files`, runs `proxies` simulated proxies against it with
/// `pushes` changes, and reads weftd's CPU and memory around that.
async fn measure(
    ctx: &Ctx,
    tag: &str,
    files: &[(&str, &str)],
    proxies: usize,
    delta: bool,
    pushes: usize,
    max_frame_size: Option<u32>,
) -> anyhow::Result<Measured> {
    let dir = ctx.work.join(format!("mesh-{tag}"));
    configs::write_mesh(&dir, files)?;
    let (mut w, load) =
        start_weftd(ctx, &format!("weftd-{tag}"), &dir, Duration::from_secs(120)).await?;
    let pid = w.proc.pid();
    let rss_loaded = rss_bytes(pid).unwrap_or(0);
    let cpu_ready = cpu_seconds(pid).unwrap_or(0.0);
    let peak = PeakRss::start(pid);
    let ads = AdsLoad {
        clients: proxies,
        delta,
        pushes,
        timeout: 120.0,
        max_frame_size,
    };
    let r = ads_run(ctx, &w, &ads, &format!("ads-{tag}")).await;
    let cpu_end = cpu_seconds(pid).unwrap_or(0.0);
    let peak = peak.finish();
    w.proc.stop().await;
    let (mut rep, cpu_connected, _) = r?;
    let changes = rep.push_all_ms.len();
    Ok(Measured {
        load_secs: load.as_secs_f64(),
        rss_loaded: mib(rss_loaded),
        rss_peak: mib(peak),
        connect_secs: rep.connect_secs,
        cpu_connect: cpu_connected - cpu_ready,
        change_p99_ms: median(&mut rep.push_p99_ms),
        change_last_ms: median(&mut rep.push_all_ms),
        cpu_per_change: (changes > 0).then(|| (cpu_end - cpu_connected) / pushes as f64),
        timeouts: rep.timeouts,
        changes,
    })
}

fn protocol(delta: bool) -> &'static str {
    if delta {
        "delta"
    } else {
        "SotW"
    }
}

/// The curve: 1,000 services, N proxies of one class.
pub async fn run(ctx: &mut Ctx, upstream: &Upstream) {
    let proxies = ctx.plan.weftd_scale_proxies.clone();
    let pushes = ctx.plan.scale_pushes.max(1);
    let mut t = Table::new(
        "weftd-scale",
        "weftd at scale — 1,000 services (ServiceEntry + DestinationRule with 2 subsets + VirtualService each), N simulated proxies of one class",
        "weftd pinned to its own core, the ADS load client (one thread) on the other. RSS peak over the whole run. Connect: from the first \
         connection until every proxy ACKed clusters, endpoints, listener and routes. A change adds one service (new clusters, endpoints, \
         virtual host); p99: the 99th-percentile proxy's file-written-to-ACK time, median over the changes; weftd CPU per change from /proc, \
         including sending. Istio's targets for this load: 2,000 proxies in < 10 s, a change p99 < 1 s, weftd <= 300 MiB.",
        vec![
            Column::new("RSS loaded", Unit::Mib),
            Column::new("RSS peak", Unit::Mib),
            Column::new("connect + configure all", Unit::Seconds),
            Column::new("weftd CPU, connect", Unit::Seconds),
            Column::new("change, p99 proxy", Unit::Millis),
            Column::new("change, last proxy", Unit::Millis),
            Column::new("weftd CPU per change", Unit::Seconds),
        ],
    );
    let text = configs::istio_services(SERVICES, upstream.h1.port());
    // The curve with weft-proxy's xDS client settings, then its largest count again as Envoy
    // connects: HTTP/2 frames of 16 KiB (weft-proxy accepts 1 MiB), so weftd writes a large
    // response in many more pieces.
    let mut runs: Vec<(usize, bool, Option<u32>)> = Vec::new();
    for delta in [false, true] {
        runs.extend(proxies.iter().map(|&n| (n, delta, None)));
    }
    if let Some(&most) = proxies.iter().max() {
        for delta in [false, true] {
            runs.push((most, delta, Some(ENVOY_MAX_FRAME_SIZE)));
        }
    }
    for (n, delta, frames) in runs {
        let mut label = format!("{n} proxies, {}", protocol(delta));
        if frames.is_some() {
            label.push_str(", Envoy's 16 KiB frames");
        }
        if let Err(e) = &ctx.peers.weft {
            t.missing(&label, e);
            continue;
        }
        if !ctx.has_time(Duration::from_secs(20 + n as u64 / 50)) {
            t.missing(&label, &ctx.over_budget_note());
            continue;
        }
        let frames_tag = if frames.is_some() { "-16k" } else { "" };
        let tag = format!("weftd-scale-{}-{n}{frames_tag}", protocol(delta));
        let files = [("services.yaml", text.as_str())];
        match measure(ctx, &tag, &files, n, delta, pushes, frames).await {
            Ok(m) => t.row(
                &label,
                vec![
                    Some(m.rss_loaded),
                    Some(m.rss_peak),
                    Some(m.connect_secs),
                    Some(m.cpu_connect),
                    m.change_p99_ms,
                    m.change_last_ms,
                    m.cpu_per_change,
                ],
                m.note(pushes),
            ),
            Err(e) => t.missing(&label, &format!("{e:#}")),
        }
    }
    ctx.push(t);
}

/// 10,000 ServiceEntries and 5,000 VirtualServices, N proxies.
pub async fn big_mesh(ctx: &mut Ctx, upstream: &Upstream) {
    let clients = ctx.plan.scale_clients.unwrap_or(10);
    let pushes = ctx.plan.scale_pushes.max(1);
    let mut t = Table::new(
        "xds-scale",
        &format!("Control-plane scale — weftd with 10,000 ServiceEntries and 5,000 VirtualServices, {clients} ADS clients"),
        "weftd pinned to its own core. Load: start to /ready. Initial config: until every client ACKed the whole mesh. \
         CPU from /proc over each phase; RSS is the peak. Each client receives every service (no Sidecar scoping yet). \
         Issue 9's target with 500 proxies: weftd <= 400 MiB.",
        vec![
            Column::new("load time", Unit::Seconds),
            Column::new("RSS loaded", Unit::Mib),
            Column::new("initial config to all", Unit::Seconds),
            Column::new("weftd CPU, initial config", Unit::Seconds),
            Column::new("RSS peak with clients", Unit::Mib),
            Column::new("change, p99 proxy", Unit::Millis),
            Column::new("weftd CPU per change", Unit::Seconds),
        ],
    );
    let base = configs::base_mesh(upstream.h1.port(), upstream.grpc.port());
    let text = configs::scale_mesh(BIG_SERVICES, BIG_VIRTUAL_SERVICES, 2, upstream.h1.port());
    for delta in [false, true] {
        let label = protocol(delta);
        if let Err(e) = &ctx.peers.weft {
            t.missing(label, e);
            continue;
        }
        if !ctx.has_time(Duration::from_secs(30)) {
            t.missing(label, &ctx.over_budget_note());
            continue;
        }
        let tag = format!("xds-scale-{label}");
        let files = [
            ("upstream.yaml", base.as_str()),
            ("scale.yaml", text.as_str()),
        ];
        match measure(ctx, &tag, &files, clients, delta, pushes, None).await {
            Ok(m) => t.row(
                label,
                vec![
                    Some(m.load_secs),
                    Some(m.rss_loaded),
                    Some(m.connect_secs),
                    Some(m.cpu_connect),
                    Some(m.rss_peak),
                    m.change_p99_ms,
                    m.cpu_per_change,
                ],
                m.note(pushes),
            ),
            Err(e) => t.missing(label, &format!("{e:#}")),
        }
    }
    ctx.push(t);
}

/// One real weft-proxy and one real Envoy holding the 1,000 services (delta xDS, both): time to
/// the first routed request, memory, and CPU per change.
pub async fn sidecars(ctx: &mut Ctx, upstream: &Upstream) {
    let pushes = ctx.plan.scale_pushes.max(1) * 5;
    let mut t = Table::new(
        "sidecar-scale",
        "Sidecars at scale — one weft-proxy and one Envoy, each holding the 1,000 services of weftd-scale (delta xDS)",
        "Both connected to one weftd at once, one worker each. Ready: from start until a request is routed to the upstream \
         (the whole mesh received and applied). RSS once ready. CPU per change: the proxy's CPU from /proc over changes that each \
         add a service and remove the previous change's, waiting for its ACK of the new clusters, endpoints and routes (weftd's \
         /debug/syncz).",
        vec![
            Column::vs_envoy("ready", Unit::Seconds),
            Column::vs_envoy("RSS", Unit::Mib),
            Column::vs_envoy("CPU per change", Unit::Millis),
        ],
    );
    let labels = [Kind::Weft.name(), Kind::Envoy.name()];
    if let Err(e) = sidecars_measured(ctx, upstream, pushes, &mut t).await {
        for label in labels {
            if !t.has_row(label) {
                t.missing(label, &format!("{e:#}"));
            }
        }
    }
    ctx.push(t);
}

async fn sidecars_measured(
    ctx: &Ctx,
    upstream: &Upstream,
    pushes: usize,
    t: &mut Table,
) -> anyhow::Result<()> {
    let dir = ctx.work.join("mesh-sidecar-scale");
    let base = configs::base_mesh(upstream.h1.port(), upstream.grpc.port());
    let services = configs::istio_services(SERVICES, upstream.h1.port());
    configs::write_mesh(
        &dir,
        &[("upstream.yaml", &base), ("services.yaml", &services)],
    )?;
    let (mut weftd, _) =
        start_weftd(ctx, "weftd-sidecar-scale", &dir, Duration::from_secs(60)).await?;
    let mut running = Vec::new();
    for kind in [Kind::Weft, Kind::Envoy] {
        let mut env = ctx.env(upstream, Some(&weftd), "-sidecar-scale");
        env.ready_limit = Duration::from_secs(60);
        match contenders::start(kind, &env).await {
            Ok(r) => running.push((kind, r)),
            Err(e) => t.missing(kind.name(), &format!("{e:#}")),
        }
    }
    // Settled: what the first configuration allocated and freed is behind.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let nodes: Vec<(Kind, String)> = running.iter().map(|(k, _)| (*k, k.node_id())).collect();
    // What /proc cannot tell (no process, or gone) is no figure, not a zero.
    let cpu = |r: &contenders::Running| r.pid().and_then(|p| cpu_seconds(p).ok());
    let rss: Vec<Option<f64>> = running
        .iter()
        .map(|(_, r)| r.pid().and_then(|p| rss_bytes(p).ok()).map(mib))
        .collect();
    let cpu_before: Vec<Option<f64>> = running.iter().map(|(_, r)| cpu(r)).collect();
    let mut outcome = Ok(());
    for k in 0..pushes {
        if let Err(e) = one_push(&weftd, &nodes, 2_000_000 + k as u64).await {
            outcome = Err(e);
            break;
        }
    }
    for (i, (kind, r)) in running.iter_mut().enumerate() {
        let per_change = match (cpu_before[i], cpu(r)) {
            (Some(before), Some(after)) if outcome.is_ok() => {
                Some((after - before) * 1000.0 / pushes as f64)
            }
            _ => None,
        };
        t.row(
            kind.name(),
            vec![Some(r.time_to_ready.as_secs_f64()), rss[i], per_change],
            format!("{pushes} changes"),
        );
        r.stop().await;
    }
    weftd.proc.stop().await;
    outcome
}

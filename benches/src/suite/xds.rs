//! Control-plane measurements: xDS push latency (a real weft-proxy and a real Envoy, then
//! hundreds of simulated ADS clients), and the pieces the weftd scale measurements
//! (`weftd_scale`) share: starting weftd and running the ADS load client against it.

use super::{Ctx, Slot};
use crate::ads_load::AdsReport;
use crate::configs::{self, push_probe, write_atomic};
use crate::contenders::{Kind, Upstream, Weftd};
use crate::procs::LineChild;
use crate::procstat::{cpu_seconds, rss_bytes};
use crate::report::{Column, Table, Unit};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;
use xds_protos::type_url::{CLUSTER, ENDPOINT, ROUTE};

/// The types a probe change touches: a new service means a new cluster, its endpoints, and a
/// new virtual host.
const CHANGED: [&str; 3] = [CLUSTER, ENDPOINT, ROUTE];

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn max(v: &[f64]) -> Option<f64> {
    v.iter().copied().reduce(f64::max)
}

/// Per node id: (type -> (last acked version, last sent version)).
type Acks = HashMap<String, HashMap<String, (Option<String>, Option<String>)>>;

fn acks(syncz: &[Value]) -> Acks {
    let mut out = Acks::new();
    for p in syncz {
        let Some(node) = p["node_id"].as_str() else {
            continue;
        };
        let mut types = HashMap::new();
        if let Some(t) = p["types"].as_object() {
            for (url, s) in t {
                let get = |k: &str| s[k].as_str().map(str::to_string);
                types.insert(
                    url.clone(),
                    (get("last_acked_version"), get("last_sent_version")),
                );
            }
        }
        out.insert(node.to_string(), types);
    }
    out
}

/// Push latency to the running weft-proxy and Envoy, read from weftd's /debug/syncz (the
/// moment weftd records their ACK of the new version), polled every 5 ms.
pub async fn proxies_push_latency(ctx: &mut Ctx, weftd: &Weftd, slots: &[Slot]) {
    let mut t = Table::new(
        "xds-push-proxies",
        "xDS push latency — one real proxy (delta xDS)",
        "From writing a changed file into weftd's folder to weftd recording the proxy's ACK of the new clusters, endpoints and routes \
         (/debug/syncz polled every 5 ms; weftd debounces file events by 100 ms). Both proxies are connected to the same weftd.",
        vec![Column::vs_envoy("p50", Unit::Millis), Column::vs_envoy("max", Unit::Millis)],
    );
    let nodes: Vec<(Kind, String)> = slots
        .iter()
        .filter(|s| matches!(s.kind, Kind::Weft | Kind::Envoy) && s.ok().is_some())
        .map(|s| (s.kind, s.kind.node_id()))
        .collect();
    let mut lat: HashMap<String, Vec<f64>> = HashMap::new();
    let mut failure = None;
    if !nodes.is_empty() && ctx.has_time(Duration::from_secs(ctx.plan.push_rounds as u64)) {
        for k in 0..ctx.plan.push_rounds {
            match one_push(weftd, &nodes, k as u64).await {
                Ok(done) => {
                    for (node, ms) in done {
                        lat.entry(node).or_default().push(ms);
                    }
                }
                Err(e) => {
                    failure = Some(format!("{e:#}"));
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let _ = std::fs::remove_file(weftd.dir.join("push-probe.yaml"));
    }
    for s in slots
        .iter()
        .filter(|s| matches!(s.kind, Kind::Weft | Kind::Envoy))
    {
        let name = s.kind.name();
        if let Err(e) = &s.running {
            t.missing(name, e);
            continue;
        }
        match lat.get_mut(&s.kind.node_id()) {
            Some(v) if !v.is_empty() => {
                let n = v.len();
                let m = max(v);
                t.row(name, vec![median(v), m], format!("{n} pushes"));
            }
            _ => t.missing(name, failure.as_deref().unwrap_or("no push measured")),
        }
    }
    ctx.push(t);
}

/// One change; returns (node id, ms to ACK) for every node.
pub(super) async fn one_push(
    weftd: &Weftd,
    nodes: &[(Kind, String)],
    k: u64,
) -> Result<Vec<(String, f64)>> {
    let before = acks(&weftd.syncz().await?);
    for (kind, node) in nodes {
        anyhow::ensure!(
            before.contains_key(node),
            "{} is not connected to weftd",
            kind.name()
        );
    }
    let t0 = Instant::now();
    write_atomic(&weftd.dir, "push-probe.yaml", &push_probe(1_000_000 + k, 9))?;
    let mut done: Vec<(String, f64)> = Vec::new();
    while done.len() < nodes.len() {
        if t0.elapsed() > Duration::from_secs(15) {
            bail!("push {k}: not every proxy ACKed within 15 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = acks(&weftd.syncz().await?);
        let at = t0.elapsed().as_secs_f64() * 1000.0;
        for (_, node) in nodes {
            if done.iter().any(|(n, _)| n == node) {
                continue;
            }
            let (Some(b), Some(n)) = (before.get(node), now.get(node)) else {
                continue;
            };
            let caught_up = CHANGED.iter().all(|t| {
                let (acked, sent) = n.get(*t).cloned().unwrap_or_default();
                let old = b.get(*t).and_then(|v| v.0.clone());
                acked.is_some() && acked != old && acked == sent
            });
            if caught_up {
                done.push((node.clone(), at));
            }
        }
    }
    Ok(done)
}

/// What the ADS load client is asked to do.
#[derive(Debug, Clone, Copy)]
pub(super) struct AdsLoad {
    pub clients: usize,
    pub delta: bool,
    /// How many changes to time.
    pub pushes: usize,
    /// Seconds before a push (or the initial config) counts as timed out.
    pub timeout: f64,
    /// The HTTP/2 frame size the clients accept; `None`: weft-proxy's.
    pub max_frame_size: Option<u32>,
}

/// Runs `weft-bench ads-load` against `weftd`; returns (report, weftd CPU s and RSS at
/// "connected").
pub(super) async fn ads_run(
    ctx: &Ctx,
    weftd: &Weftd,
    load: &AdsLoad,
    log: &str,
) -> Result<(AdsReport, f64, u64)> {
    let AdsLoad {
        clients,
        delta,
        pushes,
        timeout,
        max_frame_size,
    } = *load;
    let mut args = vec![
        "ads-load".to_string(),
        "--xds-addr".into(),
        weftd.xds.to_string(),
        "--clients".into(),
        clients.to_string(),
        "--config-dir".into(),
        weftd.dir.display().to_string(),
        "--pushes".into(),
        pushes.to_string(),
        "--timeout".into(),
        timeout.to_string(),
    ];
    if delta {
        args.push("--delta".into());
    }
    if let Some(size) = max_frame_size {
        args.extend(["--max-frame-size".into(), size.to_string()]);
    }
    let mut child = LineChild::spawn(log, ctx.cores.load, &ctx.self_exe, &args, &ctx.work)?;
    let pid = weftd.proc.pid();
    let mut at_connected = (0.0, 0);
    let limit = Duration::from_secs_f64(timeout * (pushes as f64 + 2.0) + 30.0);
    let deadline = Instant::now() + limit;
    loop {
        let line = tokio::time::timeout_at(deadline, child.next_line())
            .await
            .with_context(|| format!("ads-load did not finish within {limit:?}"))??;
        let Some(line) = line else {
            let log =
                std::fs::read_to_string(ctx.work.join(format!("{log}.log"))).unwrap_or_default();
            bail!(
                "ads-load ended early: {}",
                log.trim().lines().last().unwrap_or("")
            );
        };
        let v: Value =
            serde_json::from_str(&line).with_context(|| format!("ads-load said {line:?}"))?;
        match v["phase"].as_str() {
            Some("connected") => {
                at_connected = (cpu_seconds(pid).unwrap_or(0.0), rss_bytes(pid).unwrap_or(0))
            }
            Some("done") => {
                return Ok((serde_json::from_value(v)?, at_connected.0, at_connected.1))
            }
            _ => {}
        }
    }
}

pub(super) async fn start_weftd(
    ctx: &Ctx,
    name: &str,
    dir: &Path,
    limit: Duration,
) -> Result<(Weftd, Duration)> {
    let bins = ctx.peers.weft.clone().map_err(anyhow::Error::msg)?;
    // The control plane is what is measured here: it gets the proxy core, the clients the other.
    Weftd::start(&bins, name, ctx.cores.proxy, dir, &ctx.work, limit).await
}

/// Push latency with simulated ADS clients against a weftd of their own.
pub async fn ads_push_latency(ctx: &mut Ctx, upstream: &Upstream) {
    let n = ctx.plan.ads_clients;
    let mut t = Table::new(
        "xds-push-ads",
        &format!("xDS push latency — simulated ADS clients (1 and {n})"),
        "Our ADS load client (one thread, one gRPC connection per simulated proxy): from writing the changed file to every client having \
         received and ACKed the new clusters, endpoints and routes. \"all\": the last client; \"median client\": the middle one.",
        vec![
            Column::new("all ACKed, p50", Unit::Millis),
            Column::new("all ACKed, max", Unit::Millis),
            Column::new("median client, p50", Unit::Millis),
            Column::new("connect (all clients)", Unit::Seconds),
        ],
    );
    let runs = [(1, false), (n, false), (n, true)];
    for (i, (clients, delta)) in runs.into_iter().enumerate() {
        let label = format!(
            "{clients} client{}, {}",
            if clients == 1 { "" } else { "s" },
            if delta { "delta" } else { "SotW" }
        );
        if let Err(e) = &ctx.peers.weft {
            t.missing(&label, e);
            continue;
        }
        if !ctx.has_time(Duration::from_secs(5 + ctx.plan.push_rounds as u64)) {
            t.missing(&label, &ctx.over_budget_note());
            continue;
        }
        let res = async {
            let dir = ctx.work.join(format!("mesh-ads-{i}"));
            let base = configs::base_mesh(upstream.h1.port(), upstream.grpc.port());
            configs::write_mesh(&dir, &[("upstream.yaml", &base)])?;
            let (mut w, _) = start_weftd(
                ctx,
                &format!("weftd-ads-{i}"),
                &dir,
                Duration::from_secs(30),
            )
            .await?;
            let load = AdsLoad {
                clients,
                delta,
                pushes: ctx.plan.push_rounds,
                timeout: 30.0,
                max_frame_size: None,
            };
            let r = ads_run(ctx, &w, &load, &format!("ads-load-{i}")).await;
            w.proc.stop().await;
            r
        }
        .await;
        match res {
            Ok((mut rep, _, _)) => {
                let note = if rep.timeouts > 0 {
                    format!("{} pushes timed out", rep.timeouts)
                } else {
                    format!("{} pushes", rep.push_all_ms.len())
                };
                let m = max(&rep.push_all_ms);
                t.row(
                    &label,
                    vec![
                        median(&mut rep.push_all_ms),
                        m,
                        median(&mut rep.push_median_ms),
                        Some(rep.connect_secs),
                    ],
                    note,
                );
            }
            Err(e) => t.missing(&label, &format!("{e:#}")),
        }
    }
    ctx.push(t);
}

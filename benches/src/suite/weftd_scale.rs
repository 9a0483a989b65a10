//! weftd at scale (issue 9): 1,000 services, each a ServiceEntry, a DestinationRule with two
//! subsets and a VirtualService (Istio's documented test load), with a growing number of
//! simulated proxies of one class, state of the world and delta. For each: weftd's RSS, the
//! time to connect and configure every proxy, how long one change takes to reach (be ACKed by)
//! every proxy — p99 over proxies — and weftd's CPU per change, which should not grow with the
//! number of proxies in one class beyond what sending costs.

use super::xds::{ads_run, start_weftd};
use super::Ctx;
use crate::configs;
use crate::contenders::Upstream;
use crate::procstat::{cpu_seconds, mib, rss_bytes, PeakRss};
use crate::report::{Column, Table, Unit};
use std::time::Duration;

pub const SERVICES: usize = 1_000;

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

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
    for delta in [false, true] {
        for &n in &proxies {
            let label = format!("{n} proxies, {}", if delta { "delta" } else { "SotW" });
            if let Err(e) = &ctx.peers.weft {
                t.missing(&label, e);
                continue;
            }
            if !ctx.has_time(Duration::from_secs(20 + n as u64 / 50)) {
                t.missing(&label, &ctx.over_budget_note());
                continue;
            }
            let res = async {
                let tag = format!("{}-{n}", if delta { "delta" } else { "sotw" });
                let dir = ctx.work.join(format!("mesh-weftd-scale-{tag}"));
                std::fs::create_dir_all(&dir)?;
                std::fs::write(dir.join("services.yaml"), &text)?;
                let (mut w, _) = start_weftd(
                    ctx,
                    &format!("weftd-scale-{tag}"),
                    &dir,
                    Duration::from_secs(120),
                )
                .await?;
                let pid = w.proc.pid();
                let rss_loaded = rss_bytes(pid).unwrap_or(0);
                let cpu_ready = cpu_seconds(pid).unwrap_or(0.0);
                let peak = PeakRss::start(pid);
                let r = ads_run(ctx, &w, n, delta, pushes, 120.0, &format!("ads-{tag}")).await;
                let cpu_end = cpu_seconds(pid).unwrap_or(0.0);
                let peak = peak.finish();
                w.proc.stop().await;
                let (mut rep, cpu_connected, _) = r?;
                let done = rep.push_all_ms.len();
                let per_change = (done > 0).then(|| (cpu_end - cpu_connected) / pushes as f64);
                anyhow::Ok((
                    vec![
                        Some(mib(rss_loaded)),
                        Some(mib(peak)),
                        Some(rep.connect_secs),
                        Some(cpu_connected - cpu_ready),
                        median(&mut rep.push_p99_ms),
                        median(&mut rep.push_all_ms),
                        per_change,
                    ],
                    rep.timeouts,
                    done,
                ))
            }
            .await;
            match res {
                Ok((cells, timeouts, done)) => {
                    let note = if timeouts > 0 {
                        format!("{timeouts} of {pushes} changes timed out")
                    } else {
                        format!("{done} changes")
                    };
                    t.row(&label, cells, note)
                }
                Err(e) => t.missing(&label, &format!("{e:#}")),
            }
        }
    }
    ctx.push(t);
}

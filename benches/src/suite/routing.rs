//! Routing scale: 10,000 routes over 1,000 clusters loaded in every proxy, then the same
//! fixed-rate latency run and the proxy's memory.
//!
//! Fresh proxies and a fresh weftd that loads the whole mesh at start, so the figures are those
//! of a proxy that started with the big table (not one that grew into it), and "time to ready"
//! is how long a new proxy takes to receive and apply 10,000 routes.

use super::dataplane::{added_latency_table, fixed_load, fixed_note, latency_columns, percentiles};
use super::Ctx;
use crate::configs::{self, HaproxyScale};
use crate::contenders::{self, Kind, Upstream, Weftd};
use crate::http_util::{is_ok, wait_until};
use crate::load::fixed::FixedReport;
use crate::procstat::{mib, rss_bytes};
use crate::report::{Column, Table, Unit};
use anyhow::Result;
use std::time::Duration;

const SERVICES: usize = 1_000;
const ROUTES_PER_SERVICE: usize = 10;

pub async fn run(ctx: &mut Ctx, upstream: &Upstream) {
    let (secs, warmup) = (ctx.plan.fixed_secs, ctx.plan.fixed_warmup);
    let mut lat = Table::new(
        "routing-latency",
        &format!("Routing scale — latency at 1,000 req/s with 10,000 routes and 1,000 clusters loaded ({secs:.0} s)"),
        "1,000 ServiceEntries, each with a VirtualService of 10 prefix routes, plus the benchmarked service. \
         HAProxy gets the same routes as a map_beg map on host+path. Direct: the same upstream without a proxy (no routes).",
        latency_columns(),
    );
    let mut mem = Table::new(
        "routing-memory",
        "Routing scale — proxy memory and time to ready with 10,000 routes",
        "Time to ready: from starting the proxy to its first request routed through the last of the 10,000 routes.",
        vec![Column::vs_envoy("RSS", Unit::Mib), Column::vs_envoy("time to ready", Unit::Seconds)],
    );
    let mut reports: Vec<(Kind, Option<FixedReport>)> = Vec::new();
    if ctx.direct_fixed.is_none() {
        // Run on its own (--only routing): measure direct here.
        let env = ctx.env(upstream, None, "");
        if let Ok(direct) = contenders::start(Kind::Direct, &env).await {
            ctx.direct_fixed = fixed_load(ctx, &direct, configs::UPSTREAM_HOST, 16, secs, warmup)
                .await
                .ok();
        }
    }
    match &ctx.direct_fixed {
        Some(d) => {
            lat.row(
                Kind::Direct.name(),
                percentiles(d),
                "the direct fixed-rate run",
            );
            reports.push((Kind::Direct, Some(d.clone())));
        }
        None => lat.missing(Kind::Direct.name(), "no direct fixed-rate run"),
    }

    let weftd = match start_weftd(ctx, upstream).await {
        Ok(w) => Some(w),
        Err(e) => {
            eprintln!("weft-bench: routing-scale weftd: {e:#}");
            None
        }
    };
    let map_file = ctx.work.join("haproxy-routes.map");
    let scale = match std::fs::write(
        &map_file,
        configs::haproxy_scale_map(SERVICES, ROUTES_PER_SERVICE),
    ) {
        Ok(()) => Some(HaproxyScale {
            map_file,
            services: SERVICES,
        }),
        Err(_) => None,
    };
    for kind in Kind::PROXIES {
        let name = kind.name();
        if kind != Kind::Haproxy && weftd.is_none() {
            let why = ctx
                .peers
                .weft
                .as_ref()
                .err()
                .cloned()
                .unwrap_or_else(|| "weftd did not start".into());
            lat.missing(name, &why);
            mem.missing(name, &why);
            reports.push((kind, None));
            continue;
        }
        if !ctx.has_time(Duration::from_secs_f64(secs + warmup + 15.0)) {
            lat.missing(name, &ctx.over_budget_note());
            mem.missing(name, &ctx.over_budget_note());
            reports.push((kind, None));
            continue;
        }
        let mut env = ctx.env(upstream, weftd.as_ref(), "-routing");
        env.haproxy_scale = scale.as_ref();
        env.ready_limit = Duration::from_secs(120);
        let started = tokio::time::Instant::now();
        let mut running = match contenders::start(kind, &env).await {
            Ok(r) => r,
            Err(e) => {
                let why = format!("{e:#}");
                lat.missing(name, &why);
                mem.missing(name, &why);
                reports.push((kind, None));
                continue;
            }
        };
        // The last service's last route answering means the whole table is in.
        let h1 = running.h1;
        let last_host = format!("svc-{}:8080", SERVICES - 1);
        let last_path = format!("/svc-{}/r{}", SERVICES - 1, ROUTES_PER_SERVICE - 1);
        let ready = wait_until(
            &format!("{name} with 10,000 routes"),
            Duration::from_secs(120),
            || Ok(()),
            || is_ok(h1, &last_host, &last_path),
        )
        .await;
        let ready_secs = started.elapsed().as_secs_f64();
        if let Err(e) = ready {
            let why = format!("{e:#}");
            lat.missing(name, &why);
            mem.missing(name, &why);
            reports.push((kind, None));
            running.stop().await;
            continue;
        }
        let res = fixed_load(ctx, &running, configs::UPSTREAM_HOST, 16, secs, warmup).await;
        let rss = running.pid().and_then(|p| rss_bytes(p).ok()).map(mib);
        match res {
            Ok(rep) => {
                lat.row(name, percentiles(&rep), fixed_note(&rep));
                mem.row(name, vec![rss, Some(ready_secs)], "");
                reports.push((kind, Some(rep)));
            }
            Err(e) => {
                lat.missing(name, &format!("{e:#}"));
                mem.row(name, vec![rss, Some(ready_secs)], "");
                reports.push((kind, None));
            }
        }
        running.stop().await;
    }
    if let Some(mut w) = weftd {
        w.proc.stop().await;
    }
    let added = added_latency_table(
        "routing-added-latency",
        "Routing scale — added latency (minus direct) with 10,000 routes",
        reports.iter().map(|(k, r)| (*k, r.as_ref())),
    );
    ctx.push(lat);
    ctx.push(added);
    ctx.push(mem);
}

async fn start_weftd(ctx: &Ctx, upstream: &Upstream) -> Result<Weftd> {
    let bins = ctx.peers.weft.clone().map_err(anyhow::Error::msg)?;
    let dir = ctx.work.join("mesh-routing");
    let base = configs::base_mesh(upstream.h1.port(), upstream.grpc.port());
    let scale = configs::scale_mesh(SERVICES, SERVICES, ROUTES_PER_SERVICE, upstream.h1.port());
    configs::write_mesh(&dir, &[("upstream.yaml", &base), ("scale.yaml", &scale)])?;
    let (w, took) = Weftd::start(
        &bins,
        "weftd-routing",
        ctx.cores.load,
        &dir,
        &ctx.work,
        Duration::from_secs(120),
    )
    .await?;
    eprintln!(
        "weft-bench: weftd loaded 10,000 routes in {:.2} s",
        took.as_secs_f64()
    );
    Ok(w)
}

//! The soak: weft-proxy under a fixed 2,000 req/s for a long time (30 minutes by default)
//! while weftd pushes a config change every 10 s, with the proxy's resident memory sampled
//! every few seconds. What it shows is whether memory stays flat (no leak per request or per
//! push), whether any request fails across the pushes, and what latency looks like over the
//! whole run.
//!
//! The push is real: the VirtualService of `upstream` splits traffic over two services that
//! both lead to nginx, and every 10 s its weights are rewritten in weftd's config folder, so
//! each push changes a route configuration and moves traffic between two clusters. It runs
//! only when asked for (`--only soak`): its length would not fit any mode's budget, and it is
//! not part of the smoke test.

use super::Ctx;
use crate::configs::{service_entry, SMALL_BODY, UPSTREAM_HOST};
use crate::contenders::{self, Kind, Upstream, Weftd};
use crate::load::fixed::FixedReport;
use crate::procstat::{mib, rss_bytes};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

/// The load: Envoy's and Istio's usual sidecar figure for "busy", open loop.
const RATE: f64 = 2000.0;
const CONNECTIONS: usize = 32;
const PUSH_EVERY: Duration = Duration::from_secs(10);
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Memory is judged after this much run: the first seconds fill pools and buffers.
const SETTLE: Duration = Duration::from_secs(60);

/// The first two documents: the service and its twin on the same nginx.
fn services(nginx_port: u16) -> String {
    format!(
        "{}---\n{}",
        service_entry("upstream", 8080, "HTTP", nginx_port),
        service_entry("upstream-b", 8080, "HTTP", nginx_port)
    )
}

/// The VirtualService whose weights each push rewrites.
fn split(weight_a: u32) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: upstream, namespace: default}}
spec:
  hosts: [upstream.default.svc.cluster.local]
  http:
  - route:
    - destination: {{host: upstream.default.svc.cluster.local, port: {{number: 8080}}}}
      weight: {weight_a}
    - destination: {{host: upstream-b.default.svc.cluster.local, port: {{number: 8080}}}}
      weight: {}
",
        100 - weight_a
    )
}

/// The weight of `upstream` at push `n`: 30, 50, 70, 90, 70, 50, 30, 10, 30, ... (the run
/// starts at 50), so every push changes the weights.
fn weight_for(n: u32) -> u32 {
    let step = n % 8;
    10 + 20 * if step <= 4 { step } else { 8 - step }
}

/// Writes a file the way editors do (a temporary file renamed into place), so weftd never
/// reads half of it.
fn write_config(dir: &Path, name: &str, text: &str) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dir.join(name))?;
    Ok(())
}

/// One RSS sample.
struct Sample {
    at: Duration,
    rss: u64,
}

pub async fn run(ctx: &mut Ctx, upstream: &Upstream, duration: Duration, out: &Path) {
    match soak(ctx, upstream, duration).await {
        Ok(result) => {
            let doc = result.markdown(duration);
            println!("{doc}");
            if let Some(dir) = out.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            match std::fs::write(out, &doc) {
                Ok(()) => eprintln!("weft-bench: soak curve written to {}", out.display()),
                Err(e) => eprintln!("weft-bench: cannot write {}: {e}", out.display()),
            }
            ctx.push(result.table());
        }
        Err(e) => eprintln!("weft-bench: soak failed: {e:#}"),
    }
}

struct SoakResult {
    samples: Vec<Sample>,
    load: FixedReport,
    pushes: u32,
    /// Route NACKs weftd recorded for the proxy.
    nacks: u64,
    /// Whether the proxy had acknowledged the last push when the run ended.
    converged: bool,
}

async fn soak(ctx: &Ctx, upstream: &Upstream, duration: Duration) -> Result<SoakResult> {
    let bins = ctx.peers.weft.clone().map_err(|e| anyhow::anyhow!(e))?;
    let dir = ctx.work.join("soak-mesh");
    std::fs::create_dir_all(&dir)?;
    write_config(&dir, "services.yaml", &services(upstream.h1.port()))?;
    write_config(&dir, "split.yaml", &split(50))?;
    let (mut weftd, _) = Weftd::start(
        &bins,
        "weftd-soak",
        ctx.cores.load,
        &dir,
        &ctx.work,
        Duration::from_secs(30),
    )
    .await?;
    let env = ctx.env(upstream, Some(&weftd), "-soak");
    let mut proxy = contenders::start(Kind::Weft, &env).await?;
    let result = drive(ctx, &weftd, &proxy, &dir, duration).await;
    proxy.stop().await;
    weftd.proc.stop().await;
    result
}

async fn drive(
    ctx: &Ctx,
    weftd: &Weftd,
    proxy: &contenders::Running,
    dir: &Path,
    duration: Duration,
) -> Result<SoakResult> {
    let pid = proxy.pid().context("weft-proxy has no process")?;
    let warmup = 2.0;
    let args = vec![
        "load-fixed".to_string(),
        "--target".into(),
        proxy.h1.to_string(),
        "--host".into(),
        UPSTREAM_HOST.into(),
        "--path".into(),
        SMALL_BODY.into(),
        "--rate".into(),
        RATE.to_string(),
        "--connections".into(),
        CONNECTIONS.to_string(),
        "--duration".into(),
        duration.as_secs_f64().to_string(),
        "--warmup".into(),
        warmup.to_string(),
    ];
    let limit = duration + Duration::from_secs(120);
    let load = crate::procs::run_tool("load-fixed", ctx.cores.load, &ctx.self_exe, &args, limit);
    tokio::pin!(load);
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut sample_tick = tokio::time::interval(SAMPLE_EVERY);
    let mut push_tick = tokio::time::interval_at(start + PUSH_EVERY, PUSH_EVERY);
    let mut pushes = 0u32;
    let out = loop {
        tokio::select! {
            out = &mut load => break out?,
            _ = sample_tick.tick() => {
                let rss = rss_bytes(pid).context("the proxy's RSS (did it exit?)")?;
                samples.push(Sample { at: start.elapsed(), rss });
            }
            _ = push_tick.tick() => {
                pushes += 1;
                write_config(dir, "split.yaml", &split(weight_for(pushes)))?;
            }
        }
    };
    let load: FixedReport = serde_json::from_str(out.trim()).context("load-fixed output")?;
    let (nacks, converged) = push_outcome(weftd).await;
    Ok(SoakResult {
        samples,
        load,
        pushes,
        nacks,
        converged,
    })
}

/// From weftd's view of the proxy: route NACKs, and whether the last push was acknowledged.
async fn push_outcome(weftd: &Weftd) -> (u64, bool) {
    const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
    let node = Kind::Weft.node_id();
    // The last push may still be on its way: give it a few seconds (bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let syncz = weftd.syncz().await.unwrap_or_default();
        let me = syncz.iter().find(|p| p["node_id"] == node.as_str());
        let routes = me.map(|p| &p["types"][ROUTE]);
        let nacks = routes.map_or(0, |r| u64::from(!r["last_nack"].is_null()));
        let converged = routes.is_some_and(|r| {
            !r["last_sent_version"].is_null() && r["last_sent_version"] == r["last_acked_version"]
        });
        if converged || Instant::now() >= deadline {
            return (nacks, converged);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl SoakResult {
    fn settled(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(|s| s.at >= SETTLE)
    }

    /// Least-squares slope of RSS over the settled part, in MiB per 10 minutes.
    fn slope_mib_per_10min(&self) -> Option<f64> {
        let pts: Vec<(f64, f64)> = self
            .settled()
            .map(|s| (s.at.as_secs_f64(), mib(s.rss)))
            .collect();
        if pts.len() < 3 {
            return None;
        }
        let n = pts.len() as f64;
        let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
        let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
        let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
        (sxx > 0.0).then(|| sxy / sxx * 600.0)
    }

    fn rss_range(&self) -> Option<(f64, f64)> {
        let v: Vec<f64> = self.settled().map(|s| mib(s.rss)).collect();
        let min = v.iter().copied().reduce(f64::min)?;
        let max = v.iter().copied().reduce(f64::max)?;
        Some((min, max))
    }

    fn table(&self) -> crate::report::Table {
        use crate::report::{Column, Table, Unit};
        let mut t = Table::new(
            "soak",
            "Soak — weft-proxy at 2,000 req/s with a config push every 10 s",
            "RSS after the first minute; the full curve is in benches/results/soak.md.",
            vec![
                Column::new("RSS min", Unit::Mib),
                Column::new("RSS max", Unit::Mib),
                Column::new("RSS slope per 10 min", Unit::Mib),
                Column::new("achieved", Unit::Rps),
                Column::new("p99", Unit::Micros),
            ],
        );
        let (min, max) = self.rss_range().unzip();
        t.row(
            "weft-proxy",
            vec![
                min,
                max,
                self.slope_mib_per_10min(),
                Some(self.load.achieved_rate),
                Some(self.load.latency_us.p99),
            ],
            format!(
                "{} errors, {} pushes, {} route NACKs",
                self.load.errors, self.pushes, self.nacks
            ),
        );
        t
    }

    fn markdown(&self, duration: Duration) -> String {
        let mut md = String::new();
        let mins = duration.as_secs_f64() / 60.0;
        let _ = writeln!(md, "# Soak: weft-proxy, {mins:.0} minutes\n");
        let _ = writeln!(
            md,
            "weft-proxy (`--concurrency 1`, pinned to one core) under our open-loop generator at a \
             fixed {RATE:.0} req/s over {CONNECTIONS} HTTP/1.1 keep-alive connections (64-byte \
             body from nginx), while weftd pushes a VirtualService weight change every \
             {} s. RSS (`VmRSS`) sampled every {} s. Run with \
             `benches/run --only soak --soak-duration {}s`.\n",
            PUSH_EVERY.as_secs(),
            SAMPLE_EVERY.as_secs(),
            duration.as_secs()
        );
        let p = &self.load.latency_us;
        let _ = writeln!(md, "## Summary\n");
        let _ = writeln!(md, "| figure | value |\n|---|---|");
        let _ = writeln!(md, "| length | {mins:.1} min |");
        let _ = writeln!(
            md,
            "| requests measured | {} ({} errors, {} unsent, {} late starts) |",
            self.load.requests, self.load.errors, self.load.unsent, self.load.late_starts
        );
        let _ = writeln!(
            md,
            "| achieved rate | {:.0} req/s |",
            self.load.achieved_rate
        );
        let _ = writeln!(
            md,
            "| latency p50 / p99 / p99.9 | {:.0} / {:.0} / {:.0} µs |",
            p.p50, p.p99, p.p999
        );
        let _ = writeln!(
            md,
            "| config pushes | {} (route NACKs: {}; last push acknowledged: {}) |",
            self.pushes,
            self.nacks,
            if self.converged { "yes" } else { "no" }
        );
        if let (Some(first), Some(last)) = (self.settled().next(), self.samples.last()) {
            let _ = writeln!(
                md,
                "| RSS at {} s / at the end | {:.1} / {:.1} MiB |",
                first.at.as_secs(),
                mib(first.rss),
                mib(last.rss)
            );
        }
        if let Some((min, max)) = self.rss_range() {
            let _ = writeln!(
                md,
                "| RSS min / max after {} s | {min:.1} / {max:.1} MiB |",
                SETTLE.as_secs()
            );
        }
        if let Some(s) = self.slope_mib_per_10min() {
            let _ = writeln!(md, "| RSS trend (least squares) | {s:+.2} MiB per 10 min |");
        }
        let _ = writeln!(md, "\n## RSS curve\n");
        let _ = writeln!(md, "| t (s) | RSS (MiB) |\n|---:|---:|");
        for s in &self.samples {
            let _ = writeln!(md, "| {} | {:.1} |", s.at.as_secs(), mib(s.rss));
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_push_changes_the_weights() {
        let mut previous = 50;
        for n in 1..=20 {
            let w = weight_for(n);
            assert!((10..=90).contains(&w), "{w}");
            assert_ne!(w, previous, "push {n}");
            previous = w;
        }
    }

    #[test]
    fn durations_take_seconds_or_a_unit() {
        assert_eq!(
            super::super::parse_duration("90"),
            Ok(Duration::from_secs(90))
        );
        assert_eq!(
            super::super::parse_duration("300s"),
            Ok(Duration::from_secs(300))
        );
        assert_eq!(
            super::super::parse_duration("5m"),
            Ok(Duration::from_secs(300))
        );
        assert_eq!(
            super::super::parse_duration("1h"),
            Ok(Duration::from_secs(3600))
        );
        assert!(super::super::parse_duration("5x").is_err());
        assert!(super::super::parse_duration("m").is_err());
    }

    fn result(rss_mib: &[(u64, f64)]) -> SoakResult {
        SoakResult {
            samples: rss_mib
                .iter()
                .map(|(at, m)| Sample {
                    at: Duration::from_secs(*at),
                    rss: (m * 1024.0 * 1024.0) as u64,
                })
                .collect(),
            load: serde_json::from_str(
                r#"{"requests":1,"total_requests":1,"errors":0,"achieved_rate":1.0,
                "latency_us":{"count":1,"p50":1.0,"p90":1.0,"p99":1.0,"p999":1.0,"max":1.0},
                "late_starts":0,"unsent":0}"#,
            )
            .unwrap(),
            pushes: 0,
            nacks: 0,
            converged: true,
        }
    }

    #[test]
    fn the_trend_ignores_the_first_minute_and_reads_a_leak() {
        // Growth while settling does not count; 1 MiB per minute after it is 10 per 10 min.
        let r = result(&[(0, 5.0), (30, 20.0), (60, 20.0), (120, 21.0), (180, 22.0)]);
        let slope = r.slope_mib_per_10min().unwrap();
        assert!((slope - 10.0).abs() < 0.01, "{slope}");
        let flat = result(&[(0, 5.0), (60, 20.0), (120, 20.0), (180, 20.0)]);
        assert_eq!(flat.slope_mib_per_10min(), Some(0.0));
        assert_eq!(flat.rss_range(), Some((20.0, 20.0)));
    }
}

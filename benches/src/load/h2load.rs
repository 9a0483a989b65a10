//! Saturation throughput over HTTP/2 (cleartext, prior knowledge) with h2load: N connections,
//! 16 concurrent streams on each.

use super::Throughput;
use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

#[allow(clippy::too_many_arguments)]
pub async fn run(
    h2load: &Path,
    core: Option<usize>,
    target: SocketAddr,
    authority: &str,
    path: &str,
    connections: usize,
    streams: usize,
    seconds: u64,
) -> Result<Throughput> {
    let args = vec![
        "-t1".to_string(),
        format!("-c{connections}"),
        format!("-m{streams}"),
        format!("-D{seconds}"),
        "--warm-up-time=1".into(),
        // The URI gives the :authority the proxies route on; --connect-to says where to dial.
        format!("--connect-to={target}"),
        format!("http://{authority}{path}"),
    ];
    let limit = Duration::from_secs(seconds + 20);
    let out = crate::procs::run_tool("h2load", core, h2load, &args, limit).await?;
    parse(&out).with_context(|| format!("cannot read h2load's output:\n{out}"))
}

/// Reads the req/s of the `finished in` line and the 2xx count. With a warm-up, "finished in"
/// counts the warm-up too but req/s is over the main duration only, so req/s is what we take,
/// scaled by the share of 2xx answers.
pub fn parse(out: &str) -> Result<Throughput> {
    let mut rps = None;
    let mut total = None;
    let mut ok = None;
    for line in out.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("finished in ") {
            // "finished in 3.00s, 23673.50 req/s, 4.45MB/s"
            rps = rest
                .split(',')
                .nth(1)
                .and_then(|r| r.trim().strip_suffix(" req/s"))
                .and_then(|r| r.trim().parse::<f64>().ok());
        } else if let Some(rest) = line.strip_prefix("requests: ") {
            total = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok());
        } else if let Some(rest) = line.strip_prefix("status codes: ") {
            ok = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok());
        }
    }
    let (Some(rps), Some(total), Some(ok)) = (rps, total, ok) else {
        bail!("no summary lines");
    };
    let ok_fraction = if total > 0 {
        ok as f64 / total as f64
    } else {
        0.0
    };
    Ok(Throughput {
        rps: rps * ok_fraction,
        requests: total,
        errors: total.saturating_sub(ok),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "starting benchmark...
spawning thread #0: 16 total client(s). Timing-based test with 1s warm-up time and 2s main duration
Warm-up phase is over for thread #0.
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 2.00s, 60000.50 req/s, 10.00MB/s
requests: 120001 total, 120257 started, 120001 done, 120000 succeeded, 1 failed, 0 errored, 0 timeout
status codes: 120000 2xx, 0 3xx, 0 4xx, 1 5xx
traffic: 20.00MB (20971520) total, 1.00MB (1048576) headers (space savings 90.00%), 7.00MB (7340032) data
";

    #[test]
    fn parses_summary() {
        let t = parse(SAMPLE).unwrap();
        assert_eq!(t.requests, 120001);
        assert_eq!(t.errors, 1);
        assert!((t.rps - 60000.50 * 120000.0 / 120001.0).abs() < 0.01);
    }
}

//! Saturation throughput over HTTP/1.1 keep-alive with wrk (closed loop: every connection
//! sends its next request as soon as the previous one answered, which is what "max
//! throughput" means). One wrk thread, since wrk shares its core with the upstream.

use super::Throughput;
use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub async fn run(
    wrk: &Path,
    core: Option<usize>,
    target: SocketAddr,
    host: &str,
    path: &str,
    connections: usize,
    seconds: u64,
) -> Result<Throughput> {
    let args = vec![
        "-t1".to_string(),
        format!("-c{connections}"),
        format!("-d{seconds}s"),
        "--timeout".into(),
        "5s".into(),
        "-H".into(),
        format!("Host: {host}"),
        format!("http://{target}{path}"),
    ];
    let limit = Duration::from_secs(seconds + 20);
    let out = crate::procs::run_tool("wrk", core, wrk, &args, limit).await?;
    parse(&out).with_context(|| format!("cannot read wrk's output:\n{out}"))
}

/// Reads `Requests/sec:`, the request count and the error lines of wrk's summary.
pub fn parse(out: &str) -> Result<Throughput> {
    let mut rps = None;
    let mut total = None;
    let mut errors = 0u64;
    for line in out.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            rps = Some(v.trim().parse::<f64>()?);
        } else if line.contains(" requests in ") {
            total = line
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok());
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += v.trim().parse::<u64>()?;
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            errors += v
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    let Some(rps) = rps else {
        bail!("no Requests/sec line")
    };
    let total = total.unwrap_or(0);
    // Requests/sec counts failed answers too; report the successful rate.
    let ok_fraction = if total > 0 {
        total.saturating_sub(errors) as f64 / total as f64
    } else {
        1.0
    };
    Ok(Throughput {
        rps: rps * ok_fraction,
        requests: total,
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 2s test @ http://127.0.0.1:8080/b64
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   186.02us   40.10us   2.01ms   91.00%
    Req/Sec    85.11k     3.01k   89.00k    75.00%
  169386 requests in 2.00s, 46.68MB read
  Socket errors: connect 0, read 2, write 0, timeout 0
  Non-2xx or 3xx responses: 10
Requests/sec:  84682.34
Transfer/sec:     23.34MB
";

    #[test]
    fn parses_summary() {
        let t = parse(SAMPLE).unwrap();
        assert_eq!(t.requests, 169386);
        assert_eq!(t.errors, 12);
        assert!((t.rps - 84682.34 * (169374.0 / 169386.0)).abs() < 0.01);
    }

    #[test]
    fn missing_summary_is_an_error() {
        assert!(parse("unable to connect to 127.0.0.1:1 Connection refused").is_err());
    }
}

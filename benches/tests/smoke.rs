//! Smoke test of the benchmark harness: runs `weft-bench --mode smoke` (a second or two per
//! measurement, a subset of them) and checks that every contender produced a figure in every
//! table. No timing is asserted: the benchmark prints figures, it does not judge them.
//!
//! The peers (Envoy, HAProxy, nginx, wrk, h2load, taskset) must be installed, so the test is
//! ignored by default and runs with `cargo test -- --include-ignored` (as CI does, after
//! `.ci/run` installs the peers). Run without a peer, it fails and names what is missing.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const HARNESS: &str = env!("CARGO_BIN_EXE_weft-bench");

#[test]
#[ignore = "needs the benchmark peers (Envoy, HAProxy, nginx, wrk, h2load, taskset); run with --include-ignored"]
fn every_contender_produces_a_number() {
    let missing = Command::new(HARNESS)
        .arg("check-peers")
        .output()
        .expect("run weft-bench check-peers");
    assert!(
        missing.status.success(),
        "this test needs the benchmark peers; missing (`.ci/run` shows how to install them):\n{}",
        String::from_utf8_lossy(&missing.stdout)
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("smoke.json");
    let md = dir.path().join("smoke.md");
    let started = Instant::now();
    let out = run_bounded(
        Command::new(HARNESS)
            .args(["--mode", "smoke", "--json"])
            .arg(&json)
            .arg("--out")
            .arg(&md),
        Duration::from_secs(600),
    );
    let log = format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "weft-bench --mode smoke failed ({}):\n{log}",
        out.status
    );
    eprintln!("smoke run took {:.0} s", started.elapsed().as_secs_f64());

    let tables = read_tables(&json, &log);
    assert!(!tables.is_empty(), "no table in the report:\n{log}");
    let mut problems = Vec::new();
    for t in &tables {
        let id = t["id"].as_str().unwrap_or("?");
        let rows = t["rows"].as_array().cloned().unwrap_or_default();
        if rows.is_empty() {
            problems.push(format!("{id}: no rows"));
        }
        for r in rows {
            // The first column is each table's headline figure.
            if !r["cells"][0].is_number() {
                problems.push(format!("{id} / {}: no figure ({})", r["label"], r["note"]));
            }
        }
    }
    let ids: Vec<&str> = tables.iter().filter_map(|t| t["id"].as_str()).collect();
    for wanted in [
        "throughput-h1-64b-c16",
        "throughput-h2",
        "throughput-grpc",
        "latency",
        "cpu",
        "memory",
        "xds-push-proxies",
        "xds-push-ads",
    ] {
        if !ids.contains(&wanted) {
            problems.push(format!("table {wanted} is missing"));
        }
    }
    assert!(problems.is_empty(), "{}\n{log}", problems.join("\n"));
}

fn read_tables(json: &Path, log: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(json)
        .unwrap_or_else(|e| panic!("read {}: {e}\n{log}", json.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}\n{log}", json.display()))
}

/// Runs a command with a time limit; the harness kills its own children when it is killed
/// (they die with it: PR_SET_PDEATHSIG).
fn run_bounded(cmd: &mut Command, limit: Duration) -> std::process::Output {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start weft-bench");
    let (mut so, mut se) = (
        child.stdout.take().expect("stdout"),
        child.stderr.take().expect("stderr"),
    );
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = std::io::Read::read_to_end(&mut so, &mut b);
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = std::io::Read::read_to_end(&mut se, &mut b);
        b
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            break child.wait().expect("wait after kill");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    std::process::Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}

/// The soak, 15 s of it: it runs, pushes, writes its curve, and loses no request. (Its
/// memory figures need the full run; this only keeps the suite from rotting.)
#[test]
#[ignore = "needs the benchmark peers (nginx, taskset); run with --include-ignored"]
fn a_short_soak_writes_its_curve() {
    let dir = tempfile::tempdir().expect("temp dir");
    let md = dir.path().join("soak.md");
    let out = run_bounded(
        Command::new(HARNESS)
            .args(["--only", "soak", "--soak-duration", "15s", "--soak-out"])
            .arg(&md),
        Duration::from_secs(180),
    );
    let log = format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the soak failed ({}):\n{log}",
        out.status
    );
    let report =
        std::fs::read_to_string(&md).unwrap_or_else(|e| panic!("no soak.md ({e}):\n{log}"));
    assert!(report.contains("(0 errors, 0 unsent"), "{report}");
    assert!(report.contains("last push acknowledged: yes"), "{report}");
    assert!(report.contains("config pushes | 1 "), "{report}");
    let curve_rows = report
        .lines()
        .skip_while(|l| !l.starts_with("## RSS curve"))
        .filter(|l| l.starts_with("| ") && l.ends_with(" |") && !l.contains("t (s)"))
        .count();
    assert!(curve_rows >= 3, "{report}");
}

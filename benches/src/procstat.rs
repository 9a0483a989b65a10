//! CPU time and resident memory of a process, read from /proc.
//!
//! `/proc/<pid>/stat` sums every thread of the process, which is what we want: Envoy's main
//! thread, its worker and its flush threads all count as the proxy's cost.

use anyhow::{Context, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// User plus system CPU time of the process so far, in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces and parentheses: fields are counted from
    // the last ')'. utime and stime are fields 14 and 15, so 12th and 13th after it.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11).context("no utime")?.parse()?;
    let stime: f64 = fields.get(12).context("no stime")?.parse()?;
    Ok((utime + stime) / clock_ticks_per_second())
}

/// Resident set size in bytes (`VmRSS`).
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let line = text
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .context("malformed VmRSS")?
        .parse()?;
    Ok(kib * 1024)
}

/// Busy CPU seconds of the whole machine so far (user, nice, system, irq, softirq of every
/// core; not idle, iowait or time stolen by the hypervisor).
pub fn machine_busy_seconds() -> Result<f64> {
    let text = std::fs::read_to_string("/proc/stat")?;
    let line = text.lines().next().context("empty /proc/stat")?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    anyhow::ensure!(v.len() >= 7, "malformed /proc/stat");
    // user nice system idle iowait irq softirq
    Ok((v[0] + v[1] + v[2] + v[5] + v[6]) / clock_ticks_per_second())
}

/// CPU seconds of this process and of every child it has waited for.
pub fn own_tree_seconds() -> Result<f64> {
    let text = std::fs::read_to_string("/proc/self/stat")?;
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed stat")?;
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|x| x.parse().ok())
        .collect();
    anyhow::ensure!(f.len() == 4, "malformed stat");
    Ok(f.iter().sum::<f64>() / clock_ticks_per_second())
}

/// How much CPU processes outside the benchmark used over a run: the machine's busy time
/// minus ours (every child is reaped by then, so its time is in our children's time).
pub struct BackgroundMeter {
    machine0: f64,
    own0: f64,
    t0: std::time::Instant,
}

impl BackgroundMeter {
    pub fn start() -> BackgroundMeter {
        BackgroundMeter {
            machine0: machine_busy_seconds().unwrap_or(0.0),
            own0: own_tree_seconds().unwrap_or(0.0),
            t0: std::time::Instant::now(),
        }
    }

    /// Other processes' CPU as a share of all cores over the interval, in percent.
    pub fn percent(&self, cores: usize) -> f64 {
        let machine = machine_busy_seconds().unwrap_or(self.machine0) - self.machine0;
        let own = own_tree_seconds().unwrap_or(self.own0) - self.own0;
        let wall = self.t0.elapsed().as_secs_f64().max(1e-9);
        (100.0 * (machine - own).max(0.0) / (wall * cores.max(1) as f64)).min(100.0)
    }
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Samples a process's RSS in the background and keeps the peak, for "memory under load".
pub struct PeakRss {
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakRss {
    pub fn start(pid: u32) -> PeakRss {
        let peak = Arc::new(AtomicU64::new(rss_bytes(pid).unwrap_or(0)));
        let p = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Ok(r) = rss_bytes(pid) {
                    p.fetch_max(r, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        PeakRss { peak, task }
    }

    pub fn finish(self) -> u64 {
        self.task.abort();
        self.peak.load(Ordering::Relaxed)
    }
}

/// CPU used by a process over an interval, started by `CpuMeter::start`.
pub struct CpuMeter {
    pid: u32,
    cpu0: f64,
    t0: std::time::Instant,
}

impl CpuMeter {
    pub fn start(pid: u32) -> CpuMeter {
        CpuMeter {
            pid,
            cpu0: cpu_seconds(pid).unwrap_or(0.0),
            t0: std::time::Instant::now(),
        }
    }

    /// (CPU seconds used, wall seconds elapsed) since `start`.
    pub fn read(&self) -> (f64, f64) {
        let cpu = cpu_seconds(self.pid).unwrap_or(self.cpu0) - self.cpu0;
        (cpu.max(0.0), self.t0.elapsed().as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).unwrap() > 0);
        assert!(cpu_seconds(pid).unwrap() >= 0.0);
    }
}

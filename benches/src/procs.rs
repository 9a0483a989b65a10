//! Child processes of the benchmark: pinned to a core with `taskset`, logged to a file, and never
//! left behind.
//!
//! Three layers make sure nothing outlives the harness, because a stray Envoy or nginx would
//! hold its port and skew the next run: `Drop` stops a child when its owner goes away; a signal
//! handler and a panic hook kill every child still registered; and each child is started with
//! `PR_SET_PDEATHSIG` so that even a SIGKILLed harness takes its children with it. The death
//! signal belongs to the thread that forked, so children are only spawned from the main thread
//! (the harness runs a current-thread runtime).

use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

static LIVE: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());
/// The work folder, removed on Ctrl-C too (a normal exit removes it through its TempDir).
static WORK: Mutex<Option<PathBuf>> = Mutex::new(None);

pub fn remove_on_interrupt(dir: Option<PathBuf>) {
    if let Ok(mut w) = WORK.lock() {
        *w = dir;
    }
}

fn register(pid: u32) {
    if let Ok(mut live) = LIVE.lock() {
        live.insert(pid);
    }
}

fn unregister(pid: u32) {
    if let Ok(mut live) = LIVE.lock() {
        live.remove(&pid);
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory effects; a pid that is gone gives ESRCH, which is fine.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Kills every registered child at once (used from the signal handler and the panic hook).
pub fn kill_all() {
    let pids: Vec<u32> = match LIVE.lock() {
        Ok(live) => live.iter().copied().collect(),
        Err(p) => p.into_inner().iter().copied().collect(),
    };
    for pid in pids {
        signal(pid, libc::SIGKILL);
    }
}

/// Ctrl-C, SIGTERM and SIGHUP kill the children and exit; a panic kills them before unwinding.
pub fn install_cleanup() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        kill_all();
        previous(info);
    }));
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut hup)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
            eprintln!("\nweft-bench: interrupted, stopping every child process");
            kill_all();
            if let Some(dir) = WORK.lock().ok().and_then(|w| w.clone()) {
                // The children are SIGKILLed; give the kernel a moment to close their files.
                std::thread::sleep(Duration::from_millis(200));
                let _ = std::fs::remove_dir_all(dir);
            }
            std::process::exit(130);
        });
    });
}

/// Builds the command line: `taskset -c CORE program args` when a core is given.
fn command(core: Option<usize>, program: &Path, args: &[String]) -> tokio::process::Command {
    let mut cmd = match core {
        Some(c) => {
            let mut cmd = tokio::process::Command::new("taskset");
            cmd.arg("-c").arg(c.to_string()).arg(program);
            cmd
        }
        None => tokio::process::Command::new(program),
    };
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            Ok(())
        });
    }
    cmd
}

/// A long-running child (a proxy, the upstream, weftd), with its output in `<log_dir>/<name>.log`.
pub struct Proc {
    pub name: String,
    child: Option<tokio::process::Child>,
    pid: u32,
    log: PathBuf,
}

impl Proc {
    pub fn spawn(
        name: &str,
        core: Option<usize>,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
        log_dir: &Path,
    ) -> Result<Proc> {
        let log = log_dir.join(format!("{name}.log"));
        let out =
            std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = command(core, program, args);
        cmd.stdout(out).stderr(err);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name} ({})", program.display()))?;
        let pid = child.id().context("child has no pid")?;
        register(pid);
        Ok(Proc {
            name: name.to_string(),
            child: Some(child),
            pid,
            log,
        })
    }

    /// The pid of the program itself: `taskset` execs it, so it is the child's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The last lines of the log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Fails with the log tail if the process has exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        bail!(
            "{} exited; last lines of {}:\n{}",
            self.name,
            self.log.display(),
            self.log_tail(15)
        )
    }

    /// SIGTERM, then SIGKILL after a short grace period.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal(self.pid, libc::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(3), child.wait())
            .await
            .is_err()
        {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        unregister(self.pid);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.try_wait();
            unregister(self.pid);
        }
    }
}

/// Runs a tool to completion (wrk, h2load, our own load generators) and returns its stdout.
/// It is killed if it outlives `limit`.
pub async fn run_tool(
    name: &str,
    core: Option<usize>,
    program: &Path,
    args: &[String],
    limit: Duration,
) -> Result<String> {
    let mut cmd = command(core, program, args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {name} ({})", program.display()))?;
    let pid = child.id().unwrap_or(0);
    register(pid);
    let out = tokio::time::timeout(limit, child.wait_with_output()).await;
    unregister(pid);
    let out = match out {
        Ok(r) => r.with_context(|| format!("{name}: wait"))?,
        Err(_) => bail!("{name} did not finish within {limit:?}"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{name} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            if stdout.trim().is_empty() {
                String::new()
            } else {
                format!("\n{}", stdout.trim())
            }
        );
    }
    Ok(stdout)
}

/// A child whose stdout is read line by line while it runs (the ADS load client reports its
/// phases that way, so the harness can sample weftd between them).
pub struct LineChild {
    child: tokio::process::Child,
    pid: u32,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl LineChild {
    pub fn spawn(
        name: &str,
        core: Option<usize>,
        program: &Path,
        args: &[String],
        log_dir: &Path,
    ) -> Result<LineChild> {
        use tokio::io::AsyncBufReadExt;
        let log = log_dir.join(format!("{name}.log"));
        let err =
            std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let mut cmd = command(core, program, args);
        cmd.stdout(Stdio::piped()).stderr(err);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name} ({})", program.display()))?;
        let pid = child.id().unwrap_or(0);
        register(pid);
        let stdout = child.stdout.take().context("no stdout")?;
        Ok(LineChild {
            child,
            pid,
            lines: tokio::io::BufReader::new(stdout).lines(),
        })
    }

    /// The next line, or `None` at the end of the output.
    pub async fn next_line(&mut self) -> Result<Option<String>> {
        Ok(self.lines.next_line().await?)
    }
}

impl Drop for LineChild {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.try_wait();
        unregister(self.pid);
    }
}

//! Starts the planned processes, notices when one dies, and stops them all.
//!
//! Children never outlive `weftctl up`, however it ends:
//! - a normal exit, an error or a panic drops the `Child` handles, and `kill_on_drop` kills;
//! - Ctrl-C and SIGTERM reach only weftctl, because each child runs in its own process group:
//!   weftctl then stops them in order instead of racing their own signal handling;
//! - SIGKILL of weftctl cannot be caught, so on Linux each child asks the kernel to kill it
//!   when its parent dies (PR_SET_PDEATHSIG).

use super::plan::Process;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// How long a killed child may take to be reaped before we stop waiting for it.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);
/// Lines of a dead child's log shown to the user.
const TAIL_LINES: usize = 20;
/// How long a dead child's last output may take to reach its log before the tail is shown.
const OUTPUT_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Picks the lines of a child's output worth showing in `up`'s own output (every line goes
/// to the child's log file either way); returns the text to show.
pub type Echo = fn(&str) -> Option<String>;

pub struct Running {
    pub name: String,
    pub pid: Option<u32>,
    pub log: PathBuf,
    child: Child,
    /// Tasks copying an echoed child's output to its log (and to the terminal).
    output: Vec<JoinHandle<()>>,
}

/// A child that exited while it should have been running.
#[derive(Debug)]
pub struct Died {
    pub name: String,
    pub status: ExitStatus,
    pub log: PathBuf,
}

impl Died {
    pub fn report(&self) -> String {
        format!(
            "{} exited unexpectedly ({}). Last lines of {}:\n{}",
            self.name,
            self.status,
            self.log.display(),
            log_tail(&self.log, TAIL_LINES)
        )
    }
}

#[derive(Default)]
pub struct Supervisor {
    pub running: Vec<Running>,
}

impl Supervisor {
    /// Starts one process with stdout and stderr going to `<log_dir>/<name>.log`. With
    /// `echo`, the output passes through weftctl on its way to the log, and the lines `echo`
    /// picks are also printed, prefixed with the process's name.
    pub fn spawn(
        &mut self,
        process: &Process,
        program: &Path,
        log_dir: &Path,
        echo: Option<Echo>,
    ) -> anyhow::Result<()> {
        let log = log_dir.join(format!("{}.log", process.name));
        let file = File::create(&log)
            .map_err(|e| anyhow::anyhow!("cannot create log file {}: {e}", log.display()))?;
        let mut command = Command::new(program);
        command
            .args(&process.args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .process_group(0);
        if echo.is_some() {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
        } else {
            command.stdout(file.try_clone()?).stderr(file.try_clone()?);
        }
        die_with_parent(&mut command);
        let mut child = command.spawn().map_err(|e| {
            anyhow::anyhow!("cannot start {} ({}): {e}", process.name, program.display())
        })?;
        let mut output = Vec::new();
        if let Some(echo) = echo {
            let file = Arc::new(Mutex::new(file));
            if let Some(stdout) = child.stdout.take() {
                output.push(tokio::spawn(copy_lines(
                    stdout,
                    file.clone(),
                    process.name.clone(),
                    echo,
                )));
            }
            if let Some(stderr) = child.stderr.take() {
                output.push(tokio::spawn(copy_lines(
                    stderr,
                    file,
                    process.name.clone(),
                    echo,
                )));
            }
        }
        tracing::debug!(name = %process.name, pid = ?child.id(), "started");
        self.running.push(Running {
            name: process.name.clone(),
            pid: child.id(),
            log,
            child,
            output,
        });
        Ok(())
    }

    /// Lets a dead child's last output reach its log file (bounded), so its tail is complete.
    pub async fn drain_output(&mut self, name: &str) {
        for r in self.running.iter_mut().filter(|r| r.name == name) {
            for task in r.output.drain(..) {
                let _ = tokio::time::timeout(OUTPUT_DRAIN_TIMEOUT, task).await;
            }
        }
    }

    /// The first child that has exited, if any. Any exit is unexpected: these are servers.
    pub fn check(&mut self) -> Result<(), Died> {
        for r in &mut self.running {
            match r.child.try_wait() {
                Ok(Some(status)) => {
                    return Err(Died {
                        name: r.name.clone(),
                        status,
                        log: r.log.clone(),
                    })
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(name = %r.name, %error, "cannot poll child"),
            }
        }
        Ok(())
    }

    /// Kills every child, newest first (proxies before weftd, so none logs a lost control
    /// plane on the way out), then reaps them so no zombie is left behind.
    pub async fn stop_all(&mut self) {
        for r in self.running.iter_mut().rev() {
            // An error means it already exited; reaping below covers that too.
            let _ = r.child.start_kill();
        }
        for r in self.running.iter_mut().rev() {
            match tokio::time::timeout(REAP_TIMEOUT, r.child.wait()).await {
                Ok(_) => {}
                Err(_) => tracing::warn!(name = %r.name, "did not exit after kill"),
            }
        }
        self.running.clear();
    }
}

/// Copies a child's output to its log file line by line, and prints the lines `echo` picks.
async fn copy_lines(from: impl AsyncRead + Unpin, log: Arc<Mutex<File>>, name: String, echo: Echo) {
    let mut reader = BufReader::new(from);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if let Ok(mut file) = log.lock() {
            // A full disk must not stop the mesh; the line is still echoed if it matters.
            let _ = file.write_all(&line);
        }
        let text = String::from_utf8_lossy(&line);
        if let Some(shown) = echo(text.trim_end()) {
            println!("{name}: {shown}");
        }
    }
}

/// The last `lines` lines of a log file, indented; a note instead if it cannot be read.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            if all.is_empty() {
                "    (empty)".to_string()
            } else {
                all[start..]
                    .iter()
                    .map(|l| format!("    {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
        Err(e) => format!("    (cannot read: {e})"),
    }
}

#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec; prctl and getppid are
    // async-signal-safe, and nothing here allocates (the error is built from a raw OS code).
    unsafe {
        command.pre_exec(move || {
            // Best effort: a failure leaves kill_on_drop and the explicit stop in place.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            // If weftctl died between fork and prctl, no signal will ever come: give up.
            if std::os::unix::process::parent_id() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::up::plan::{Program, Role};

    fn process(name: &str, args: &[&str]) -> Process {
        Process {
            name: name.into(),
            role: Role::App,
            program: Program::DemoApp,
            args: args.iter().map(|s| s.to_string()).collect(),
            listens: vec![],
            ready_url: String::new(),
        }
    }

    #[tokio::test]
    async fn a_dead_child_is_reported_with_its_log() {
        let dir = std::env::temp_dir().join(format!("weft-sup-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut sup = Supervisor::default();
        sup.spawn(
            &process("short", &["-c", "echo starting; echo boom >&2; exit 3"]),
            Path::new("/bin/sh"),
            &dir,
            None,
        )
        .unwrap();
        sup.spawn(
            &process("long", &["-c", "sleep 30"]),
            Path::new("/bin/sh"),
            &dir,
            None,
        )
        .unwrap();
        let died = loop {
            if let Err(died) = sup.check() {
                break died;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(died.name, "short");
        assert_eq!(died.status.code(), Some(3));
        let report = died.report();
        assert!(
            report.contains("starting") && report.contains("boom"),
            "{report}"
        );
        // stop_all kills the sleeper promptly instead of waiting 30 s.
        let started = std::time::Instant::now();
        sup.stop_all().await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(sup.running.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn an_echoed_child_still_logs_every_line_of_both_streams() {
        let dir = tempfile::tempdir().unwrap();
        let mut sup = Supervisor::default();
        sup.spawn(
            &process(
                "echoed",
                &["-c", "echo one; echo two >&2; echo three; exit 4"],
            ),
            Path::new("/bin/sh"),
            dir.path(),
            Some(|line| line.contains("two").then(|| line.to_string())),
        )
        .unwrap();
        let died = loop {
            if let Err(died) = sup.check() {
                break died;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        sup.drain_output("echoed").await;
        let log = std::fs::read_to_string(&died.log).unwrap();
        let mut lines: Vec<&str> = log.lines().collect();
        lines.sort();
        assert_eq!(lines, ["one", "three", "two"]);
        sup.stop_all().await;
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let path = std::env::temp_dir().join(format!("weft-tail-test-{}.log", std::process::id()));
        let text: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).unwrap();
        let tail = log_tail(&path, 3);
        assert_eq!(tail, "    line 28\n    line 29\n    line 30");
        let _ = std::fs::remove_file(&path);
    }
}

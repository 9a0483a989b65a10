//! Starting and stopping what is measured: the upstream, weftd, and the four contenders
//! (direct, weft-proxy, Envoy, HAProxy), each proxy pinned to the proxy core.

use crate::configs::{self, GRPC_HOST, SMALL_BODY, UPSTREAM_HOST};
use crate::http_util::{is_ok, wait_until};
use crate::peers::{Peers, WeftBins};
use crate::procs::Proc;
use anyhow::{anyhow, Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which core runs what. Each proxy has a core of its own; the load generator and the
/// upstream share the other. On a one-core machine nothing is pinned.
#[derive(Debug, Clone, Copy)]
pub struct Cores {
    pub proxy: Option<usize>,
    pub load: Option<usize>,
}

impl Cores {
    pub fn detect(have_taskset: bool) -> Cores {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        if have_taskset && n >= 2 {
            Cores {
                proxy: Some(0),
                load: Some(1),
            }
        } else {
            Cores {
                proxy: None,
                load: None,
            }
        }
    }
}

pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// nginx for HTTP and our gRPC health server: the same upstream behind every contender.
pub struct Upstream {
    pub h1: SocketAddr,
    pub h2: SocketAddr,
    pub grpc: SocketAddr,
    pub nginx: Proc,
    pub grpc_server: Proc,
}

impl Upstream {
    pub async fn start(
        peers: &Peers,
        cores: Cores,
        work: &Path,
        self_exe: &Path,
    ) -> Result<Upstream> {
        let nginx_bin = peers.nginx.clone().map_err(|e| anyhow!(e))?;
        let (h1, h2, grpc) = (free_port()?, free_port()?, free_port()?);
        let dir = work.join("nginx");
        std::fs::create_dir_all(&dir)?;
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, configs::nginx(&dir, h1, h2)?)?;
        let args = vec![
            "-c".to_string(),
            conf.display().to_string(),
            "-p".into(),
            dir.display().to_string(),
            "-e".into(),
            "stderr".into(),
        ];
        let mut nginx = Proc::spawn("nginx", cores.load, &nginx_bin, &args, &[], work)?;
        let grpc_args = vec![
            "grpc-server".to_string(),
            "--addr".into(),
            local(grpc).to_string(),
        ];
        let mut grpc_server =
            Proc::spawn("grpc-server", cores.load, self_exe, &grpc_args, &[], work)?;
        let h1_addr = local(h1);
        wait_until(
            "nginx",
            Duration::from_secs(10),
            || nginx.ensure_running(),
            || is_ok(h1_addr, "x", SMALL_BODY),
        )
        .await?;
        wait_until(
            "grpc server",
            Duration::from_secs(10),
            || grpc_server.ensure_running(),
            || async move { tokio::net::TcpStream::connect(local(grpc)).await.is_ok() },
        )
        .await?;
        Ok(Upstream {
            h1: h1_addr,
            h2: local(h2),
            grpc: local(grpc),
            nginx,
            grpc_server,
        })
    }
}

/// A running weftd with its config folder.
pub struct Weftd {
    pub proc: Proc,
    pub xds: SocketAddr,
    pub http: SocketAddr,
    pub dir: PathBuf,
}

impl Weftd {
    /// Starts weftd on `dir` and waits for `/ready`; returns it and the time to ready.
    pub async fn start(
        bins: &WeftBins,
        name: &str,
        core: Option<usize>,
        dir: &Path,
        log_dir: &Path,
        limit: Duration,
    ) -> Result<(Weftd, Duration)> {
        let xds = local(free_port()?);
        let http = local(free_port()?);
        let args = vec![
            "--config-dir".to_string(),
            dir.display().to_string(),
            "--xds-addr".into(),
            xds.to_string(),
            "--http-addr".into(),
            http.to_string(),
            "--no-access-log".into(),
        ];
        let mut proc = Proc::spawn(
            name,
            core,
            &bins.weftd,
            &args,
            &[("RUST_LOG", "warn")],
            log_dir,
        )?;
        let took = wait_until(
            name,
            limit,
            || proc.ensure_running(),
            || is_ok(http, "weftd", "/ready"),
        )
        .await?;
        Ok((
            Weftd {
                proc,
                xds,
                http,
                dir: dir.to_path_buf(),
            },
            took,
        ))
    }

    /// weftd's `/debug/syncz`: one entry per connected proxy.
    pub async fn syncz(&self) -> Result<Vec<serde_json::Value>> {
        let (status, body) = crate::http_util::get(self.http, "weftd", "/debug/syncz").await?;
        anyhow::ensure!(status == 200, "/debug/syncz answered {status}");
        Ok(serde_json::from_slice(&body)?)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Direct,
    Weft,
    Envoy,
    Haproxy,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Direct, Kind::Weft, Kind::Envoy, Kind::Haproxy];
    pub const PROXIES: [Kind; 3] = [Kind::Weft, Kind::Envoy, Kind::Haproxy];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Direct => "direct",
            Kind::Weft => "weft-proxy",
            Kind::Envoy => "Envoy",
            Kind::Haproxy => "HAProxy",
        }
    }

    /// The xDS node id a weftd-configured contender announces.
    pub fn node_id(self) -> String {
        let pod = match self {
            Kind::Envoy => "bench-envoy",
            _ => "bench-weft",
        };
        format!("sidecar~127.0.0.1~{pod}.default~default.svc.cluster.local")
    }
}

/// A contender that is up: where to send HTTP/1.1, HTTP/2 and gRPC, and the proxy's process.
pub struct Running {
    pub h1: SocketAddr,
    pub h2: SocketAddr,
    pub grpc: SocketAddr,
    /// The gRPC :authority; empty when talking to the server directly.
    pub grpc_authority: String,
    pub proc: Option<Proc>,
    /// From start to the first request routed to the upstream.
    pub time_to_ready: Duration,
}

impl Running {
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    pub async fn stop(&mut self) {
        if let Some(p) = self.proc.as_mut() {
            p.stop().await;
        }
    }
}

/// What a contender needs to start.
pub struct Env<'a> {
    pub peers: &'a Peers,
    pub cores: Cores,
    pub work: &'a Path,
    pub upstream: &'a Upstream,
    pub weftd: Option<&'a Weftd>,
    /// For HAProxy's routing-scale run.
    pub haproxy_scale: Option<&'a configs::HaproxyScale>,
    /// How long a proxy may take to get its config (longer with 10,000 routes).
    pub ready_limit: Duration,
    /// Distinguishes log files and Envoy's shared-memory base id between restarts.
    pub tag: &'a str,
}

pub async fn start(kind: Kind, env: &Env<'_>) -> Result<Running> {
    let t0 = tokio::time::Instant::now();
    let mut running = match kind {
        Kind::Direct => Running {
            h1: env.upstream.h1,
            h2: env.upstream.h2,
            grpc: env.upstream.grpc,
            grpc_authority: String::new(),
            proc: None,
            time_to_ready: Duration::ZERO,
        },
        Kind::Weft => start_weft(env).await?,
        Kind::Envoy => start_envoy(env).await?,
        Kind::Haproxy => start_haproxy(env).await?,
    };
    // Ready means a request is routed to the upstream, not only that the admin says so.
    let h1 = running.h1;
    let probe = wait_until(
        &format!("{} routing to the upstream", kind.name()),
        env.ready_limit,
        || match running.proc.as_mut() {
            Some(p) => p.ensure_running(),
            None => Ok(()),
        },
        || is_ok(h1, UPSTREAM_HOST, SMALL_BODY),
    )
    .await;
    if let Err(e) = probe {
        running.stop().await;
        return Err(e);
    }
    running.time_to_ready = t0.elapsed();
    Ok(running)
}

fn weft_parts(env: &Env<'_>) -> Result<(WeftBins, SocketAddr)> {
    let bins = env.peers.weft.clone().map_err(|e| anyhow!(e))?;
    let weftd = env.weftd.context("weftd is not running")?;
    Ok((bins, weftd.xds))
}

async fn start_weft(env: &Env<'_>) -> Result<Running> {
    let (bins, xds) = weft_parts(env)?;
    let outbound = local(free_port()?);
    let admin = local(free_port()?);
    let args = vec![
        "--xds-addr".to_string(),
        xds.to_string(),
        "--node-id".into(),
        Kind::Weft.node_id(),
        "--outbound-addr".into(),
        outbound.to_string(),
        "--admin-addr".into(),
        admin.to_string(),
        "--concurrency".into(),
        "1".into(),
        "--namespace".into(),
        "default".into(),
        // A measured proxy is stopped between runs: no point waiting out a drain.
        "--exit-on-zero-active-connections".into(),
    ];
    let name = format!("weft-proxy{}", env.tag);
    let mut proc = Proc::spawn(
        &name,
        env.cores.proxy,
        &bins.proxy,
        &args,
        &[("RUST_LOG", "warn")],
        env.work,
    )?;
    wait_until(
        &name,
        env.ready_limit,
        || proc.ensure_running(),
        || is_ok(admin, "admin", "/ready"),
    )
    .await?;
    Ok(Running {
        h1: outbound,
        h2: outbound,
        grpc: outbound,
        grpc_authority: GRPC_HOST.into(),
        proc: Some(proc),
        time_to_ready: Duration::ZERO,
    })
}

async fn start_envoy(env: &Env<'_>) -> Result<Running> {
    let (bins, xds) = weft_parts(env)?;
    let envoy = env.peers.envoy.clone().map_err(|e| anyhow!(e))?;
    let outbound = local(free_port()?);
    let admin = local(free_port()?);
    let args = vec![
        "bootstrap-envoy".to_string(),
        "--xds-addr".into(),
        xds.to_string(),
        "--node-id".into(),
        Kind::Envoy.node_id(),
        "--outbound-addr".into(),
        outbound.to_string(),
        "--admin-addr".into(),
        admin.to_string(),
        // Delta, as weft-proxy speaks by default (and Istio's sidecars since 1.22).
        "--delta".into(),
    ];
    let yaml = crate::procs::run_tool(
        "weftctl",
        None,
        &bins.weftctl,
        &args,
        Duration::from_secs(30),
    )
    .await?;
    let file = env.work.join(format!("envoy{}.yaml", env.tag));
    std::fs::write(&file, yaml)?;
    // A base id of its own per instance: two Envoys with the same one collide on shared memory.
    let base_id = (std::process::id() % 10_000) * 10 + env.tag.len() as u32 + 1;
    let args = vec![
        "-c".to_string(),
        file.display().to_string(),
        "--concurrency".into(),
        "1".into(),
        "--base-id".into(),
        base_id.to_string(),
        "-l".into(),
        "warning".into(),
    ];
    let name = format!("envoy{}", env.tag);
    let mut proc = Proc::spawn(&name, env.cores.proxy, &envoy, &args, &[], env.work)?;
    wait_until(
        &name,
        env.ready_limit,
        || proc.ensure_running(),
        || is_ok(admin, "admin", "/ready"),
    )
    .await?;
    Ok(Running {
        h1: outbound,
        h2: outbound,
        grpc: outbound,
        grpc_authority: GRPC_HOST.into(),
        proc: Some(proc),
        time_to_ready: Duration::ZERO,
    })
}

async fn start_haproxy(env: &Env<'_>) -> Result<Running> {
    let haproxy = env.peers.haproxy.clone().map_err(|e| anyhow!(e))?;
    let (http, grpc) = (free_port()?, free_port()?);
    let up = env.upstream;
    let text = configs::haproxy(http, grpc, up.h1.port(), up.grpc.port(), env.haproxy_scale);
    let file = env.work.join(format!("haproxy{}.cfg", env.tag));
    std::fs::write(&file, text)?;
    // -db: stay in the foreground, one process, so its pid is the proxy's.
    let args = vec!["-db".to_string(), "-f".into(), file.display().to_string()];
    let name = format!("haproxy{}", env.tag);
    let proc = Proc::spawn(&name, env.cores.proxy, &haproxy, &args, &[], env.work)?;
    Ok(Running {
        h1: local(http),
        h2: local(http),
        grpc: local(grpc),
        grpc_authority: GRPC_HOST.into(),
        proc: Some(proc),
        time_to_ready: Duration::ZERO,
    })
}

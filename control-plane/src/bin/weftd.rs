//! weftd: the Weft control plane.

use clap::Parser;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use weft_control_plane::daemon::{self, DaemonConfig, LocalPortMap};
use weft_control_plane::model::{load_mesh_config, MeshConfig};
use weft_control_plane::translate::{access_log, AccessLogFormat, TranslateOptions};

/// jemalloc rather than glibc's malloc: weftd allocates on every worker and blocking-pool
/// thread, and glibc gives each thread its own arena that keeps what was freed. Measured with
/// 10,000 ServiceEntries, 5,000 VirtualServices and 500 proxies, peak RSS (sotw/delta): glibc
/// 529/563 MiB, mimalloc 481/494 MiB, jemalloc 428/375 MiB.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser, Debug)]
#[command(
    name = "weftd",
    version,
    about = "The Weft control plane: Istio config in, xDS out"
)]
struct Args {
    /// The folder of Istio YAML (VirtualService, DestinationRule, ServiceEntry, WorkloadEntry).
    #[arg(long)]
    config_dir: PathBuf,
    /// Where proxies connect for ADS.
    #[arg(long, default_value = "127.0.0.1:15010")]
    xds_addr: SocketAddr,
    /// /ready, /metrics and /debug/syncz.
    #[arg(long, default_value = "127.0.0.1:15014")]
    http_addr: SocketAddr,
    /// Do not configure per-request access logs on the proxies (Telemetry resources can
    /// still turn them on per workload). Replaces the mesh config's accessLogFile,
    /// accessLogEncoding and accessLogFormat.
    #[arg(long, conflicts_with = "access_log_format")]
    no_access_log: bool,
    /// The proxies' access log format, on standard output [default: istio, unless the mesh
    /// config sets accessLogFile / accessLogEncoding / accessLogFormat]. Given explicitly, it
    /// replaces those three fields.
    #[arg(long, value_enum)]
    access_log_format: Option<AccessLogFormat>,
    /// Move loopback endpoints (address 127.0.0.1/localhost) from a declared port to the port
    /// the workload really listens on: FROM=TO,FROM=TO. `weftctl up --app-port-base` sets it.
    #[arg(long, value_parser = LocalPortMap::parse)]
    local_port_map: Option<LocalPortMap>,
    /// Istio's MeshConfig YAML: tracing providers (extensionProviders[].opentelemetry),
    /// defaultProviders.tracing, defaultConfig.tracing.sampling, rootNamespace, access logs
    /// (accessLogFile, accessLogEncoding, accessLogFormat, extensionProviders[].envoyFileAccessLog,
    /// defaultProviders.accessLogging), outboundTrafficPolicy.
    #[arg(long)]
    mesh_config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person's terminal, never in a log file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    anyhow::ensure!(
        args.config_dir.is_dir(),
        "--config-dir {}: not a folder",
        args.config_dir.display()
    );
    let mut mesh_config = match &args.mesh_config {
        Some(path) => {
            let loaded = load_mesh_config(path)?;
            for w in &loaded.warnings {
                tracing::warn!("{w}");
            }
            loaded.config
        }
        None => MeshConfig::default(),
    };
    let (access_log, replaced) =
        access_log::apply_flags(&mut mesh_config, args.no_access_log, args.access_log_format);
    if replaced {
        tracing::warn!(
            "--no-access-log / --access-log-format replace the mesh config's accessLogFile, \
             accessLogEncoding and accessLogFormat"
        );
    }
    let cfg = DaemonConfig {
        config_dir: args.config_dir,
        xds_addr: args.xds_addr,
        http_addr: args.http_addr,
        options: TranslateOptions {
            access_log,
            mesh_config: std::sync::Arc::new(mesh_config),
        },
        local_port_map: args.local_port_map.unwrap_or_default(),
    };
    // Registered before anything starts, so a SIGTERM during startup still stops cleanly.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    daemon::run(cfg, shutdown).await
}

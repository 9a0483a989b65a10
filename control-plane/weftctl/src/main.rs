//! weftctl: the Weft operator CLI. Each subcommand lives in this crate's library; this
//! file only parses the command line, sets up logging and turns results into exit codes.

use clap::{Parser, Subcommand};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use weftctl::{analyze, bootstrap, iptables, proxy_config, proxy_status, up};

#[derive(Parser)]
#[command(name = "weftctl", version, about = "Operate a Weft service mesh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a local mesh on 127.0.0.1 from a config folder (e.g. examples/bookinfo).
    #[command(after_help = up::PORTS_HELP)]
    Up(up::UpArgs),
    /// Print an Envoy v3 bootstrap that makes Envoy a Weft sidecar.
    BootstrapEnvoy(bootstrap::BootstrapArgs),
    /// Check a config folder for problems.
    /// Install the iptables rules that send this network namespace's TCP traffic through the
    /// sidecar (the init step, as Istio's istio-iptables); --clean removes them.
    Iptables(iptables::IptablesArgs),
    /// Every proxy connected to weftd and whether each runs the config last sent to it.
    ProxyStatus(proxy_status::ProxyStatusArgs),
    /// What one proxy (weft-proxy or Envoy) runs, from its admin /config_dump.
    ProxyConfig(proxy_config::ProxyConfigArgs),
    Analyze {
        /// The folder of Istio YAML to check.
        dir: PathBuf,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only for a person's terminal, never in a log file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    // `up` runs here, on the main thread, not in a spawned task: see `up::run`.
    let result = match cli.command {
        Command::Up(args) => up::run(args).await,
        Command::BootstrapEnvoy(args) => bootstrap::run(&args).map(|()| 0),
        Command::Analyze { dir } => analyze::run(&dir),
        Command::Iptables(args) => iptables::run(&args).map(|()| 0),
        Command::ProxyStatus(args) => proxy_status::run(&args).await.map(|()| 0),
        Command::ProxyConfig(args) => proxy_config::run(&args).await.map(|()| 0),
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

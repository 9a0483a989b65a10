//! weft-demo-app: one service of the BookInfo in miniature that `weftctl up` runs behind each
//! sidecar. Its own small binary, so neither weftd nor weftctl's commands carry it.

use clap::Parser;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use weftctl::demo_app::{self, DemoAppArgs};

#[derive(Parser)]
// No `version` here: `--version` is the version of the service this app plays.
#[command(
    name = "weft-demo-app",
    about = "One BookInfo-style demo service (run by `weftctl up`)"
)]
struct Cli {
    #[command(flatten)]
    args: DemoAppArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match demo_app::run(Cli::parse().args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

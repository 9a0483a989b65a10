//! weft-bench: the load benchmark of Weft. One command starts an upstream, weftd and each
//! contender (direct, weft-proxy, Envoy, HAProxy), measures them in the same run and writes a
//! markdown report. See benches/README.md.
//!
//! The same binary also holds the small programs the harness starts as pinned children (load
//! generators, the gRPC upstream, the ADS load client), so that they run on the load core and
//! not inside the harness's own process.

mod ads_load;
mod ads_wire;
mod configs;
mod contenders;
mod grpc;
mod http_util;
mod idle;
mod load;
mod peers;
mod procs;
mod procstat;
mod report;
mod suite;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "weft-bench",
    about = "Weft's load benchmark: weft-proxy beside Envoy, HAProxy and a direct connection"
)]
struct Cli {
    #[command(subcommand)]
    internal: Option<Internal>,
    #[command(flatten)]
    run: suite::RunArgs,
}

/// Children the harness starts; not meant to be run by hand (but they can be).
#[derive(Subcommand, Debug)]
enum Internal {
    /// Open-loop fixed-rate HTTP/1.1 load; prints one JSON report.
    #[command(hide = true)]
    LoadFixed(load::fixed::FixedArgs),
    /// Closed-loop gRPC unary load (health Check); prints one JSON report.
    #[command(hide = true)]
    GrpcLoad(grpc::LoadArgs),
    /// The gRPC upstream: grpc.health.v1 on one thread.
    #[command(hide = true)]
    GrpcServer(grpc::ServerArgs),
    /// Simulated proxies speaking ADS to weftd; measures push latency.
    #[command(hide = true)]
    AdsLoad(ads_load::AdsArgs),
    /// Spins at the lowest priority (SCHED_IDLE) to keep a core out of idle; see idle.rs.
    #[command(hide = true)]
    IdleKeeper,
    /// Prints the peers that are missing (one per line) and exits 3 if any is.
    CheckPeers {
        /// Where the weft binaries are (default: next to this program).
        #[arg(long)]
        weft_bin_dir: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.internal {
        Some(Internal::LoadFixed(a)) => load::fixed::run(a),
        Some(Internal::GrpcLoad(a)) => grpc::load(a),
        Some(Internal::GrpcServer(a)) => grpc::serve(a),
        Some(Internal::AdsLoad(a)) => ads_load::run(a),
        Some(Internal::IdleKeeper) => idle::run(),
        Some(Internal::CheckPeers { weft_bin_dir }) => {
            let dir = weft_bin_dir.unwrap_or_else(suite::default_weft_dir);
            let peers = peers::Peers::discover(&dir, false, false);
            let missing = peers.missing();
            for m in &missing {
                println!("{m}");
            }
            if !missing.is_empty() {
                std::process::exit(3);
            }
            Ok(())
        }
        None => {
            procs::install_cleanup();
            suite::run(cli.run)
        }
    }
}

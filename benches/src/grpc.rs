//! gRPC unary: the standard health service as the upstream (`weft-bench grpc-server`) and a
//! saturating tonic client (`weft-bench grpc-load`).
//!
//! The health `Check` call is the smallest real unary RPC there is, so the figure is the
//! per-call cost of the proxy's HTTP/2 and gRPC handling, not of a payload.

use crate::load::Throughput;
use anyhow::{Context, Result};
use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use tokio::time::Instant;
use tonic::transport::{Endpoint, Server};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    #[arg(long)]
    pub addr: SocketAddr,
}

/// Serves `grpc.health.v1.Health` on one thread (it shares its core with the load generator).
pub fn serve(args: ServerArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (reporter, service) = tonic_health::server::health_reporter();
        // The empty service name is the server's overall health; it is SERVING by default.
        drop(reporter);
        // No Nagle: a response must not wait for the ACK of the previous one.
        Server::builder()
            .tcp_nodelay(true)
            .add_service(service)
            .serve(args.addr)
            .await
            .context("gRPC server")
    })
}

#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    #[arg(long)]
    pub target: SocketAddr,
    /// The :authority the proxies route on (e.g. grpc-upstream:9090); empty for direct.
    #[arg(long, default_value = "")]
    pub authority: String,
    /// HTTP/2 connections.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Concurrent calls on each connection.
    #[arg(long, default_value_t = 16)]
    pub streams: usize,
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
}

/// Runs closed-loop unary calls for warm-up + duration and prints a [`Throughput`] as JSON.
pub fn load(args: LoadArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(&rt, drive(args))?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

async fn drive(args: LoadArgs) -> Result<Throughput> {
    let mut endpoint = Endpoint::from_shared(format!("http://{}", args.target))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5));
    if !args.authority.is_empty() {
        endpoint = endpoint.origin(format!("http://{}", args.authority).parse()?);
    }
    let mut clients = Vec::new();
    for _ in 0..args.connections {
        // One `connect` per client gives one HTTP/2 connection each.
        let channel = endpoint.connect().await.context("connect")?;
        clients.push(HealthClient::new(channel));
    }
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let ok = Rc::new(Cell::new(0u64));
    let failed = Rc::new(Cell::new(0u64));
    let mut tasks = Vec::new();
    for client in &clients {
        for _ in 0..args.streams {
            let mut client = client.clone();
            let (ok, failed) = (ok.clone(), failed.clone());
            tasks.push(tokio::task::spawn_local(async move {
                loop {
                    let result = client
                        .check(HealthCheckRequest {
                            service: String::new(),
                        })
                        .await;
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    if now < measure_from {
                        continue;
                    }
                    match result {
                        Ok(_) => ok.set(ok.get() + 1),
                        Err(_) => {
                            failed.set(failed.get() + 1);
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                }
            }));
        }
    }
    for t in tasks {
        t.await?;
    }
    Ok(Throughput {
        rps: ok.get() as f64 / args.duration,
        requests: ok.get() + failed.get(),
        errors: failed.get(),
    })
}

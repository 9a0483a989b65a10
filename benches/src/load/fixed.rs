//! Our own open-loop, fixed-rate HTTP/1.1 load generator (`weft-bench load-fixed`).
//!
//! Why our own: wrk and h2load are closed-loop (a connection sends its next request when the
//! previous one answered), so a slow response delays the requests behind it and they are never
//! measured as slow — "coordinated omission". wrk2 fixes that but is not packaged for Debian.
//!
//! Request `i` is due at `start + i / rate`. Each connection is a worker that takes the next
//! due request; when every connection is busy, the due time passes and the request's latency
//! is counted from its due time, queueing included. When a worker was idle and slept until
//! the due time, latency counts from the moment it woke, so the timer's own 1 ms granularity
//! is not charged to the proxy.
//!
//! It runs on a current-thread runtime: the harness pins it to the load core with taskset.

use super::histogram::{Percentiles, Samples};
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use tokio::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct FixedArgs {
    /// Where to send requests (a proxy's listener or the upstream itself).
    #[arg(long)]
    pub target: SocketAddr,
    /// The Host header: the proxies route on it.
    #[arg(long, default_value = "upstream:8080")]
    pub host: String,
    #[arg(long, default_value = "/b64")]
    pub path: String,
    /// Requests per second, spread over all connections.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Seconds at the same rate before measuring, not recorded.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
}

/// What `load-fixed` prints as one JSON line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FixedReport {
    /// Successful requests in the measured window.
    pub requests: u64,
    /// Every request sent, warm-up included (CPU per request divides by this).
    pub total_requests: u64,
    /// Non-200 answers and failed requests.
    pub errors: u64,
    /// Measured requests per second actually completed.
    pub achieved_rate: f64,
    pub latency_us: Percentiles,
    /// Requests that found every connection busy and waited past their due time.
    pub late_starts: u64,
    /// Requests never sent: the target fell so far behind that the run was cut 2 s after
    /// its schedule ended (they are counted in `errors` too).
    pub unsent: u64,
}

struct Worker {
    target: SocketAddr,
    host: String,
    path: String,
    conn: Option<SendRequest<Empty<Bytes>>>,
}

impl Worker {
    async fn connect(&mut self) -> Result<()> {
        let stream = tokio::net::TcpStream::connect(self.target)
            .await
            .with_context(|| format!("connect {}", self.target))?;
        stream.set_nodelay(true)?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::task::spawn_local(async move {
            let _ = conn.await;
        });
        self.conn = Some(send);
        Ok(())
    }

    /// One request on the worker's connection; reconnects once if the connection was lost.
    async fn request(&mut self) -> Result<bool> {
        if self.conn.as_ref().is_none_or(|c| c.is_closed()) {
            self.connect().await?;
        }
        let send = self.conn.as_mut().context("no connection")?;
        send.ready().await?;
        let req = http::Request::get(self.path.as_str())
            .header(http::header::HOST, self.host.as_str())
            .body(Empty::<Bytes>::new())?;
        let resp = match send.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                self.conn = None;
                return Err(e.into());
            }
        };
        let ok = resp.status() == http::StatusCode::OK;
        resp.into_body().collect().await?;
        Ok(ok)
    }
}

pub fn run(args: FixedArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let report = local.block_on(&rt, drive(args))?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

async fn drive(args: FixedArgs) -> Result<FixedReport> {
    let mut workers = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let mut w = Worker {
            target: args.target,
            host: args.host.clone(),
            path: args.path.clone(),
            conn: None,
        };
        w.connect().await?;
        workers.push(w);
    }
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let warmup_n = (args.warmup * args.rate).round() as u64;
    let total_n = warmup_n + (args.duration * args.rate).round() as u64;
    let start = Instant::now() + Duration::from_millis(10);
    let next = Rc::new(Cell::new(0u64));
    let samples = Rc::new(RefCell::new(Samples::default()));
    let errors = Rc::new(Cell::new(0u64));
    let late = Rc::new(Cell::new(0u64));
    let measure_start = start + interval.mul_f64(warmup_n as f64);
    // Against a target that cannot keep the rate, the schedule would stretch without end.
    let hard_end = start + interval.mul_f64(total_n as f64) + Duration::from_secs(2);

    let mut tasks = Vec::new();
    for mut w in workers {
        let (next, samples, errors, late) =
            (next.clone(), samples.clone(), errors.clone(), late.clone());
        tasks.push(tokio::task::spawn_local(async move {
            loop {
                let i = next.get();
                if i >= total_n || Instant::now() > hard_end {
                    break;
                }
                next.set(i + 1);
                let due = start + interval.mul_f64(i as f64);
                let now = Instant::now();
                let from = if now < due {
                    tokio::time::sleep_until(due).await;
                    Instant::now()
                } else {
                    if i >= warmup_n {
                        late.set(late.get() + 1);
                    }
                    due
                };
                let ok = matches!(w.request().await, Ok(true));
                if i < warmup_n {
                    continue;
                }
                if ok {
                    let us = from.elapsed().as_micros() as u64;
                    samples.borrow_mut().record(us);
                } else {
                    errors.set(errors.get() + 1);
                    // A refused connection fails at once; do not spin through the schedule.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let measured_secs = measure_start.elapsed().as_secs_f64().max(1e-9);
    let samples = samples.take();
    let requests = samples.len() as u64;
    let unsent = total_n - next.get().min(total_n);
    Ok(FixedReport {
        requests,
        total_requests: next.get().min(total_n),
        errors: errors.get() + unsent,
        unsent,
        achieved_rate: requests as f64 / measured_secs,
        latency_us: samples.percentiles(),
        late_starts: late.get(),
    })
}

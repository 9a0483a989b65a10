//! TCP proxying (`envoy.filters.network.tcp_proxy`): a connection whose filter chain ends in a
//! TCP proxy is relayed, bytes as they are, to a host of its cluster: the chosen one of weighted
//! clusters, a host the cluster's balancer picks, or — for an `ORIGINAL_DST` cluster such as
//! Istio's `PassthroughCluster` — the address the connection was originally sent to. A cluster
//! with no host to use (Istio's `BlackHoleCluster`) closes the connection, as Envoy does.

pub mod relay;

use crate::config::{Discovery, EndpointAddress, TcpProxyConfig};
use crate::context::ProxyContext;
use crate::downstream::{DownstreamConnection, OpenConnection, Prefixed};
use crate::http::local_reply::ResponseFlags;
use crate::observe::access_log::LogRecord;
use crate::observe::istio::Reporter;
use crate::upstream::connect::{connect_from, ConnectError};
use crate::upstream::outlier::TryOutcome;
use crate::upstream::{Cluster, Host};
use relay::{relay, RelayEnd, Relayed};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tracing::debug;

/// How a proxied connection ended, for logs and stats.
#[derive(Debug, PartialEq, Eq)]
pub enum TcpOutcome {
    Relayed(Relayed),
    /// The cluster the listener names is not (or not yet) known.
    NoCluster,
    /// The cluster has no host to use (or, for `ORIGINAL_DST`, no original destination).
    NoHealthyUpstream,
    /// The cluster's `max_connections` circuit breaker is open.
    Overflow,
    /// Every connect attempt failed; the last one's reason.
    ConnectFailed(String),
}

impl TcpOutcome {
    /// Envoy's response flag for the access log: `NC`, `UH`, `UO`, `UF`, or none.
    pub fn flag(&self) -> &'static str {
        match self {
            TcpOutcome::Relayed(_) => "",
            TcpOutcome::NoCluster => "NC",
            TcpOutcome::NoHealthyUpstream => "UH",
            TcpOutcome::Overflow => "UO",
            TcpOutcome::ConnectFailed(_) => "UF",
        }
    }
}

/// One proxied connection: where it went and how it ended.
#[derive(Debug)]
pub struct TcpSession {
    pub cluster: Arc<str>,
    /// The upstream host connected to, if one was.
    pub upstream: Option<SocketAddr>,
    pub outcome: TcpOutcome,
}

/// Serves a connection a listener's chain gave to its TCP proxy, until both sides are done,
/// then writes its access log lines. A connection that reached no upstream, or whose upstream
/// reset it, is reset, as Envoy does: the client sees the failure (as it would with no proxy in
/// the way), not a clean close that reads like an empty answer.
pub async fn serve_connection(
    open: OpenConnection,
    cfg: Arc<TcpProxyConfig>,
    io: Prefixed<TcpStream>,
    conn: DownstreamConnection,
) {
    let started = SystemTime::now();
    let clock = Instant::now();
    let mut io = io;
    let ctx = open.ctx().clone();
    let reporter = if conn.inbound {
        Reporter::Destination
    } else {
        Reporter::Source
    };
    let session = serve(&ctx, &cfg, &mut io, conn.original_dst, reporter).await;
    let reset = match &session.outcome {
        // The upstream reset (or a write failed): pass the reset on, as Envoy does.
        TcpOutcome::Relayed(r) => r.end == RelayEnd::Error,
        _ => true,
    };
    if reset {
        // SO_LINGER 0: closing now sends RST (and does not block: nothing is left to send).
        let _ = socket2::SockRef::from(io.get_ref()).set_linger(Some(std::time::Duration::ZERO));
    }
    drop(io);
    debug!(
        listener = %conn.listener, peer = %conn.peer, destination = %conn.local,
        stat_prefix = %cfg.stat_prefix, ?session, "tcp connection done"
    );
    if cfg.access_log.is_empty() {
        return;
    }
    let relayed = match &session.outcome {
        TcpOutcome::Relayed(r) => *r,
        _ => Relayed::default(),
    };
    let upstream_host = session.upstream.map(|a| a.to_string()).unwrap_or_default();
    let transport_failure = match &session.outcome {
        TcpOutcome::ConnectFailed(reason) => reason.as_str(),
        _ => "",
    };
    let record = LogRecord {
        start: started,
        protocol: "",
        status: 0,
        flags: session.outcome.flag(),
        details: "",
        transport_failure,
        bytes_received: relayed.downstream_to_upstream,
        bytes_sent: relayed.upstream_to_downstream,
        duration_ms: clock.elapsed().as_millis() as u64,
        upstream_host: &upstream_host,
        upstream_cluster: &session.cluster,
        downstream_local: Some(conn.local),
        downstream_remote: conn.peer,
        route_name: "",
        grpc_status: None,
        attempts: 0,
        request: &[],
        response: &[],
    };
    for format in cfg.access_log.iter() {
        open.ctx().access_log.log(format, &record);
    }
}

/// Relays one accepted connection according to `cfg`; returns when both sides are done.
pub async fn serve<T>(
    ctx: &ProxyContext,
    cfg: &TcpProxyConfig,
    downstream: T,
    original_dst: Option<SocketAddr>,
    reporter: Reporter,
) -> TcpSession
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let snapshot = ctx.snapshot.load_full();
    let roll = rand::random_range(0..cfg.target.total());
    let name = cfg.target.pick(roll).clone();
    let session = |upstream, outcome| TcpSession {
        cluster: name.clone(),
        upstream,
        outcome,
    };
    let Some(cluster) = snapshot.cluster(&name).cloned() else {
        return session(None, TcpOutcome::NoCluster);
    };
    let limits = cluster.runtime.limits.clone();
    if !limits.try_connection() {
        cluster
            .runtime
            .stats
            .cx_overflow
            .fetch_add(1, Ordering::Relaxed);
        return session(None, TcpOutcome::Overflow);
    }
    let upstream = connect_upstream(&cluster, cfg.max_connect_attempts, original_dst).await;
    let done = match upstream {
        Ok((upstream, host)) => {
            let peer = upstream.peer_addr().ok();
            let metrics = cluster.tcp_istio_metrics(host.as_deref(), &ctx.metrics, reporter);
            metrics.opened();
            let relayed = relay(downstream, upstream, cfg.idle_timeout).await;
            // Sent is what went to the downstream peer, received what came from it.
            metrics.bytes(
                relayed.upstream_to_downstream,
                relayed.downstream_to_upstream,
            );
            metrics.closed(0, ResponseFlags::label_of_bits);
            if relayed.end == RelayEnd::IdleTimeout {
                debug!(cluster = %cluster.name, "tcp proxy: idle timeout");
            }
            session(peer, TcpOutcome::Relayed(relayed))
        }
        Err(Failure::NoHost) => session(None, TcpOutcome::NoHealthyUpstream),
        Err(Failure::Connect(e)) => {
            debug!(cluster = %cluster.name, error = %e, "tcp proxy: upstream connect failed");
            session(None, TcpOutcome::ConnectFailed(e.to_string()))
        }
    };
    limits.connection_closed();
    done
}

enum Failure {
    NoHost,
    Connect(ConnectError),
}

/// Up to `attempts` connects, each to the host the balancer picks then (a failed host is
/// reported to outlier detection, so the next pick can avoid it). Returns the connection and
/// the host it reached (none for an original destination), whose workload the metrics name.
async fn connect_upstream(
    cluster: &Arc<Cluster>,
    attempts: u32,
    original_dst: Option<SocketAddr>,
) -> Result<(TcpStream, Option<Arc<Host>>), Failure> {
    let config = &cluster.config;
    let mut last = Failure::NoHost;
    for _ in 0..attempts {
        let host = if config.discovery == Discovery::OriginalDst {
            None
        } else {
            Some(cluster.pick(None).cloned().ok_or(Failure::NoHost)?)
        };
        let address = match (&host, original_dst) {
            (Some(h), _) => h.address().clone(),
            (None, Some(dst)) => EndpointAddress::Socket(dst),
            (None, None) => return Err(Failure::NoHost),
        };
        match connect_from(
            &address,
            config.connection.source_address,
            config.connect_timeout,
            config.connection.tcp_keepalive,
        )
        .await
        {
            Ok(stream) => return Ok((stream, host)),
            Err(e) => {
                cluster
                    .runtime
                    .stats
                    .cx_connect_fail
                    .fetch_add(1, Ordering::Relaxed);
                if let Some(h) = &host {
                    let outcome = if e.is_timeout() {
                        TryOutcome::LocalTimeout
                    } else {
                        TryOutcome::LocalFailure
                    };
                    cluster.report(h, outcome);
                }
                last = Failure::Connect(e);
            }
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests;

//! TCP proxying (`envoy.filters.network.tcp_proxy`): a connection whose filter chain ends in a
//! TCP proxy is relayed, bytes as they are, to a host of its cluster: the chosen one of weighted
//! clusters, a host the cluster's balancer picks, or — for an `ORIGINAL_DST` cluster such as
//! Istio's `PassthroughCluster` — the address the connection was originally sent to. A cluster
//! with no host to use (Istio's `BlackHoleCluster`) closes the connection, as Envoy does.

pub mod relay;

use crate::config::{Discovery, EndpointAddress, TcpProxyConfig};
use crate::context::ProxyContext;
use crate::downstream::{DownstreamConnection, OpenConnection};
use crate::upstream::connect::{connect_from, ConnectError};
use crate::upstream::outlier::TryOutcome;
use crate::upstream::Cluster;
use relay::{relay, RelayEnd, Relayed};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tracing::debug;

/// How a proxied connection ended, for logs and stats.
#[derive(Debug, PartialEq, Eq)]
pub enum TcpOutcome {
    Relayed(Relayed),
    /// The cluster the listener names is not (or not yet) known.
    NoCluster(Arc<str>),
    /// The cluster has no host to use (or, for `ORIGINAL_DST`, no original destination).
    NoHealthyUpstream(Arc<str>),
    /// The cluster's `max_connections` circuit breaker is open.
    Overflow(Arc<str>),
    /// Every connect attempt failed.
    ConnectFailed(Arc<str>),
}

/// Serves a connection a listener's chain gave to its TCP proxy, until both sides are done.
pub async fn serve_connection<T>(
    open: OpenConnection,
    cfg: Arc<TcpProxyConfig>,
    io: T,
    conn: DownstreamConnection,
) where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let outcome = serve(open.ctx(), &cfg, io, conn.original_dst).await;
    debug!(
        listener = %conn.listener, peer = %conn.peer, destination = %conn.local,
        stat_prefix = %cfg.stat_prefix, ?outcome, "tcp connection done"
    );
}

/// Relays one accepted connection according to `cfg`; returns when both sides are done.
pub async fn serve<T>(
    ctx: &ProxyContext,
    cfg: &TcpProxyConfig,
    downstream: T,
    original_dst: Option<SocketAddr>,
) -> TcpOutcome
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let snapshot = ctx.snapshot.load_full();
    let roll = rand::random_range(0..cfg.target.total());
    let name = cfg.target.pick(roll).clone();
    let Some(cluster) = snapshot.cluster(&name).cloned() else {
        return TcpOutcome::NoCluster(name);
    };
    let limits = cluster.runtime.limits.clone();
    if !limits.try_connection() {
        return TcpOutcome::Overflow(name);
    }
    let upstream = connect_upstream(&cluster, cfg.max_connect_attempts, original_dst).await;
    let outcome = match upstream {
        Ok(upstream) => TcpOutcome::Relayed(relay(downstream, upstream, cfg.idle_timeout).await),
        Err(Failure::NoHost) => TcpOutcome::NoHealthyUpstream(name),
        Err(Failure::Connect(e)) => {
            debug!(cluster = %cluster.name, error = %e, "tcp proxy: upstream connect failed");
            TcpOutcome::ConnectFailed(name)
        }
    };
    limits.connection_closed();
    if let TcpOutcome::Relayed(r) = &outcome {
        if r.end == RelayEnd::IdleTimeout {
            debug!(cluster = %cluster.name, "tcp proxy: idle timeout");
        }
    }
    outcome
}

enum Failure {
    NoHost,
    Connect(ConnectError),
}

/// Up to `attempts` connects, each to the host the balancer picks then (a failed host is
/// reported to outlier detection, so the next pick can avoid it).
async fn connect_upstream(
    cluster: &Arc<Cluster>,
    attempts: u32,
    original_dst: Option<SocketAddr>,
) -> Result<TcpStream, Failure> {
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
            Ok(stream) => return Ok(stream),
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

//! The chain's `connection_limit` filters, run on a connection once its chain is chosen (see
//! `crate::connection_limit` for how the limit and the stats are counted).

use crate::config::FilterChainConfig;
use crate::connection_limit::{Admitted, LimiterKey};
use crate::context::ProxyContext;
use std::net::SocketAddr;
use tracing::warn;

/// Admits the connection through every limit of `chain`, or, at a limit, holds it for the
/// filter's `delay` (cut short when the proxy drains) and returns `None`: the caller closes it.
/// The guards keep the connection counted until they are dropped.
pub(super) async fn admit(
    ctx: &ProxyContext,
    listener: &str,
    chain: &FilterChainConfig,
    peer: SocketAddr,
) -> Option<Vec<Admitted>> {
    let mut admitted = Vec::new();
    for limit in &chain.connection_limits {
        let limiter = limit
            .limiter
            .get_or_resolve(&ctx.connection_limits, || LimiterKey {
                listener: listener.to_string(),
                chain: chain.name.clone(),
                stat_prefix: limit.stat_prefix.clone(),
                max_connections: limit.max_connections,
                delay: limit.delay,
            });
        if let Some(a) = limiter.try_admit() {
            admitted.push(a);
            continue;
        }
        if let Some(skipped) = limiter.log_refusal() {
            warn!(
                listener, chain = %chain.name, %peer, stat_prefix = %limit.stat_prefix,
                max_connections = limiter.max_connections(), not_logged = skipped,
                "connection closed: the chain's connection_limit is reached \
                 (counted in connection_limit.{}.limited_connections)",
                limit.stat_prefix
            );
        }
        // Release the other limits at once: only this one refused the connection.
        drop(admitted);
        if let Some(delay) = limit.delay {
            let mut draining = ctx.draining.subscribe();
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = crate::http::wait_true(&mut draining) => {}
            }
        }
        return None;
    }
    Some(admitted)
}

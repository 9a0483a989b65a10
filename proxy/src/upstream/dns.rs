//! Name resolution for the hosts of `STRICT_DNS` and `LOGICAL_DNS` clusters.
//!
//! Envoy resolves a DNS cluster's names off the request path, every `dns_refresh_rate`
//! (5 s by default), and when a resolution fails it keeps the addresses it had: a resolver
//! that times out or answers SERVFAIL does not take a working upstream away. An answer that
//! the name has no address (NXDOMAIN, or no A/AAAA record) is a result, not a failure: a
//! strict DNS cluster then has no host for the name, and connecting fails.
//!
//! [`DnsCache`] does the same, lazily: a connection to a name reads the addresses resolved
//! last. When they are older than the refresh interval, a refresh starts in the background and
//! the connection still uses them; a connection waits on a resolution only when the name has
//! never resolved (the first connection after startup or a push), and then every connection
//! waiting shares that one query. After a failure or an empty answer with nothing to fall back
//! on, connections fail at once until the next refresh is due, so a dead resolver is not asked
//! once per connection. Names nobody connects to for an hour are forgotten.
//!
//! The resolver is the system's (`getaddrinfo`, which reads `/etc/hosts` and
//! `/etc/resolv.conf`), or a DNS server given with `--dns-resolver`, asked over UDP as Envoy's
//! c-ares resolver does with `typed_dns_resolver_config` (see [`wire`]). The cache is
//! process-wide, like the bootstrap's resolver in Envoy: [`configure`] sets it once at
//! startup.

pub mod wire;

use futures::future::{BoxFuture, FutureExt, Shared};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// Envoy's default `dns_refresh_rate`, the only one weft-proxy follows.
pub const DEFAULT_REFRESH: Duration = crate::config::DEFAULT_DNS_REFRESH_RATE;
/// A name unused this long is dropped from the cache.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Past this many names, each new one first sweeps out the forgotten ones.
const SWEEP_ABOVE: usize = 1024;

/// What one resolution said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The name's addresses, in the resolver's order (never empty).
    Found(Vec<SocketAddr>),
    /// The name has no address: NXDOMAIN, or no A/AAAA record.
    NoRecords,
    /// The resolver could not answer (timeout, SERVFAIL, unreachable...), with why.
    Failed(String),
}

/// A way to resolve names.
pub trait Resolve: Send + Sync + 'static {
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<'static, Resolution>;
}

/// The system's resolver. `getaddrinfo` does not tell a missing name from a resolver that
/// failed, so every error counts as a failure and keeps the last good addresses.
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<'static, Resolution> {
        let host = host.to_string();
        async move {
            match tokio::net::lookup_host((host.as_str(), port)).await {
                Ok(addrs) => {
                    let addrs: Vec<SocketAddr> = addrs.collect();
                    if addrs.is_empty() {
                        Resolution::NoRecords
                    } else {
                        Resolution::Found(addrs)
                    }
                }
                Err(e) => Resolution::Failed(e.to_string()),
            }
        }
        .boxed()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("{host} has no address")]
    NoAddress { host: String },
    #[error("cannot resolve {host}: {reason}")]
    Failed { host: String, reason: String },
    #[error("the DNS resolver is already configured")]
    AlreadyConfigured,
}

type Key = (String, u16);
type Refresh = Shared<BoxFuture<'static, ()>>;

/// A resolution under way: what waiters await, and its task, to tell one that ended without
/// recording an answer.
struct Refreshing {
    done: Refresh,
    task: tokio::task::AbortHandle,
}

struct Entry {
    /// The addresses of the last resolution that found some.
    addresses: Option<Arc<[SocketAddr]>>,
    /// Why the name has no address to offer now, when it has none.
    missing: Option<Resolution>,
    /// When the next refresh is due.
    due: Instant,
    /// The resolution under way, which connections with nothing to fall back on await.
    refreshing: Option<Refreshing>,
    last_used: Instant,
}

/// Resolved names with their last good addresses (see the module note).
pub struct DnsCache {
    resolver: Arc<dyn Resolve>,
    refresh: Duration,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl DnsCache {
    pub fn new(resolver: Arc<dyn Resolve>, refresh: Duration) -> Arc<Self> {
        Arc::new(DnsCache {
            resolver,
            refresh,
            entries: Mutex::new(HashMap::new()),
        })
    }

    /// The address to connect to for `host:port`: the first the last good resolution gave.
    /// Waits only when the name has never resolved; the caller bounds that wait (the
    /// cluster's connect timeout).
    pub async fn lookup(self: &Arc<Self>, host: &str, port: u16) -> Result<SocketAddr, DnsError> {
        let key = (host.to_string(), port);
        let wait = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            if entries.len() > SWEEP_ABOVE && !entries.contains_key(&key) {
                entries.retain(|_, e| now.duration_since(e.last_used) < FORGET_AFTER);
            }
            let entry = entries.entry(key.clone()).or_insert_with(|| Entry {
                addresses: None,
                missing: None,
                due: now,
                refreshing: None,
                last_used: now,
            });
            entry.last_used = now;
            // A refresh records its answer before it ends; one that ended without (its runtime
            // shut down, as at the end of a test) must not block every later refresh.
            if entry
                .refreshing
                .as_ref()
                .is_some_and(|r| r.task.is_finished())
            {
                entry.refreshing = None;
            }
            let due = now >= entry.due;
            if due && entry.refreshing.is_none() {
                entry.refreshing = Some(self.start_refresh(key.clone()));
            }
            match (&entry.addresses, &entry.refreshing) {
                (Some(addresses), _) => return Ok(addresses[0]),
                (None, Some(refresh)) => refresh.done.clone(),
                (None, None) => return Err(missing(host, entry.missing.as_ref())),
            }
        };
        wait.await;
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(&key);
        match entry.and_then(|e| e.addresses.as_ref()) {
            Some(addresses) => Ok(addresses[0]),
            None => Err(missing(host, entry.and_then(|e| e.missing.as_ref()))),
        }
    }

    /// Runs one resolution of `key` as its own task, so a connection that gives up waiting
    /// does not cancel it, and records what it found.
    fn start_refresh(self: &Arc<Self>, key: Key) -> Refreshing {
        let cache = self.clone();
        let query = self.resolver.resolve(&key.0, key.1);
        let task = tokio::spawn(async move {
            let result = query.await;
            cache.record(&key, result);
        });
        Refreshing {
            task: task.abort_handle(),
            // The task records its result itself: waiters only need to know it ended.
            done: task.map(|_| ()).boxed().shared(),
        }
    }

    fn record(&self, key: &Key, result: Resolution) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(entry) = entries.get_mut(key) else {
            return;
        };
        entry.refreshing = None;
        entry.due = Instant::now() + self.refresh;
        match result {
            Resolution::Found(addresses) => {
                if entry.addresses.as_deref() != Some(&addresses[..]) {
                    tracing::info!(host = %key.0, ?addresses, "DNS name resolved");
                }
                entry.addresses = Some(addresses.into());
                entry.missing = None;
            }
            Resolution::NoRecords => {
                if entry.addresses.is_some() {
                    tracing::warn!(host = %key.0, "DNS name has no address any more");
                }
                entry.addresses = None;
                entry.missing = Some(Resolution::NoRecords);
            }
            Resolution::Failed(reason) => {
                match &entry.addresses {
                    Some(kept) => tracing::warn!(
                        host = %key.0, %reason, addresses = ?kept,
                        "DNS resolution failed; keeping the last addresses"
                    ),
                    None => tracing::warn!(host = %key.0, %reason, "DNS resolution failed"),
                }
                if entry.addresses.is_none() {
                    entry.missing = Some(Resolution::Failed(reason));
                }
            }
        }
    }
}

fn missing(host: &str, why: Option<&Resolution>) -> DnsError {
    match why {
        Some(Resolution::Failed(reason)) => DnsError::Failed {
            host: host.to_string(),
            reason: reason.clone(),
        },
        _ => DnsError::NoAddress {
            host: host.to_string(),
        },
    }
}

static GLOBAL: OnceLock<Arc<DnsCache>> = OnceLock::new();

/// Sets the process's resolver: a DNS server asked over UDP, or the system's with `None`.
/// Call it once, before the first connection; later calls fail.
pub fn configure(server: Option<SocketAddr>) -> Result<(), DnsError> {
    let resolver: Arc<dyn Resolve> = match server {
        Some(server) => Arc::new(wire::UdpResolver::new(server)),
        None => Arc::new(SystemResolver),
    };
    GLOBAL
        .set(DnsCache::new(resolver, DEFAULT_REFRESH))
        .map_err(|_| DnsError::AlreadyConfigured)
}

/// The process's cache: the system resolver unless [`configure`] said otherwise.
pub fn global() -> &'static Arc<DnsCache> {
    GLOBAL.get_or_init(|| DnsCache::new(Arc::new(SystemResolver), DEFAULT_REFRESH))
}

#[cfg(test)]
mod tests;

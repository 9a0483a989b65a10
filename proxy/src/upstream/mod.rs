//! Clusters at run time: hosts with their connection pools, load-balancer state and stats.
//!
//! A [`Cluster`] is rebuilt into every new snapshot, but the parts that must outlive a reload
//! (connection pools, balancer position, counters) are carried over from the previous
//! snapshot's cluster of the same name: hosts by address, the rest when the cluster's settings
//! did not change. So a reload neither drops pooled connections nor resets statistics.

pub mod connect;
pub mod lb;
pub mod pool;
pub mod stats;

use crate::body::InFlight;
use crate::config::{ClusterConfig, Endpoint, EndpointAddress, UpstreamProtocol};
use lb::LbState;
use pool::HostPool;
use stats::ClusterStats;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One upstream host of one cluster.
pub struct Host {
    pub weight: u32,
    healthy: bool,
    /// Requests in flight; shared with the host's next incarnation when a reload changes its
    /// weight or health, so guards of requests started before the reload still count down.
    active: Arc<AtomicU64>,
    pool: Arc<HostPool>,
}

impl Host {
    pub fn new(
        address: EndpointAddress,
        weight: u32,
        healthy: bool,
        protocol: UpstreamProtocol,
    ) -> Arc<Host> {
        Arc::new(Host {
            weight: weight.max(1),
            healthy,
            active: Arc::new(AtomicU64::new(0)),
            pool: HostPool::new(address, protocol),
        })
    }

    pub fn address(&self) -> &EndpointAddress {
        self.pool.address()
    }

    pub fn pool(&self) -> &Arc<HostPool> {
        &self.pool
    }

    /// Whether the balancer may pick this host.
    pub fn is_available(&self) -> bool {
        self.healthy
    }

    pub fn healthy(&self) -> bool {
        self.healthy
    }

    pub fn active_requests(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Counts the request as in flight until the guard drops (with the response body).
    pub fn start_request(&self) -> InFlight {
        InFlight::start(&self.active)
    }
}

impl fmt::Display for EndpointAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointAddress::Socket(a) => write!(f, "{a}"),
            EndpointAddress::Dns { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// Runtime state kept across reloads while the cluster's settings stay the same.
#[derive(Default)]
pub struct ClusterRuntime {
    pub lb: LbState,
    pub stats: ClusterStats,
}

pub struct Cluster {
    pub name: Arc<str>,
    pub config: Arc<ClusterConfig>,
    pub hosts: Vec<Arc<Host>>,
    /// Whether any host has a weight other than 1, which switches to weighted selection.
    weighted: bool,
    pub runtime: Arc<ClusterRuntime>,
}

impl Cluster {
    /// Builds the cluster for a new snapshot, reusing what `previous` had for unchanged parts.
    pub fn build(
        config: Arc<ClusterConfig>,
        endpoints: &[Endpoint],
        previous: Option<&Cluster>,
    ) -> Cluster {
        let reuse = previous.filter(|p| p.config.protocol == config.protocol);
        let mut old_hosts: HashMap<String, &Arc<Host>> = reuse
            .map(|p| {
                p.hosts
                    .iter()
                    .map(|h| (h.address().to_string(), h))
                    .collect()
            })
            .unwrap_or_default();
        let hosts: Vec<Arc<Host>> = endpoints
            .iter()
            .map(|ep| match old_hosts.remove(&ep.address.to_string()) {
                Some(h) if h.weight == ep.weight.max(1) && h.healthy == ep.healthy => h.clone(),
                Some(h) => Arc::new(Host {
                    weight: ep.weight.max(1),
                    healthy: ep.healthy,
                    active: h.active.clone(),
                    pool: h.pool.clone(),
                }),
                None => Host::new(ep.address.clone(), ep.weight, ep.healthy, config.protocol),
            })
            .collect();
        let runtime = previous.map(|p| p.runtime.clone()).unwrap_or_default();
        Cluster {
            name: Arc::from(config.name.as_str()),
            weighted: hosts.iter().any(|h| h.weight != 1),
            hosts,
            config,
            runtime,
        }
    }

    pub fn pick(&self) -> Option<&Arc<Host>> {
        lb::pick(
            self.config.lb_policy,
            &self.runtime.lb,
            &self.hosts,
            self.weighted,
        )
    }

    pub fn healthy_hosts(&self) -> usize {
        self.hosts.iter().filter(|h| h.is_available()).count()
    }
}

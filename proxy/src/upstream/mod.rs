//! Clusters at run time: hosts with their connection pools, load-balancer state and stats.
//!
//! A new snapshot shares the previous snapshot's [`Cluster`] when its config and endpoints did
//! not change. A cluster that did change is rebuilt, but the parts that must outlive a reload
//! (connection pools, balancer position, counters) are carried over from the previous
//! snapshot's cluster of the same name: hosts by address (with the time they joined, which
//! slow start ramps from), the rest when the cluster's settings did not change. So a reload
//! neither drops pooled connections nor resets statistics, and a cluster whose hosts and
//! balancer settings are unchanged keeps its built balancer (ring, table) as is.

pub mod connect;
pub mod dns;
pub mod lb;
pub mod limits;
pub mod outlier;
pub mod pool;
pub mod stats;

use crate::body::InFlight;
use crate::config::{
    ClusterConfig, Discovery, Endpoint, EndpointAddress, UpstreamProtocol, WorkloadMetadata,
};
use crate::envoy_stats::Page;
use crate::observe::istio::tcp::TcpMetrics;
use crate::observe::istio::{DestinationMetrics, IstioMetrics, Reporter, WorkloadSeries};
use arc_swap::ArcSwap;
use lb::{Balancer, LbState};
use limits::Limits;
use outlier::{Detector, HostOutlier, Members};
use pool::HostPool;
use stats::ClusterStats;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::time::Instant;

/// One upstream host of one cluster.
pub struct Host {
    pub weight: u32,
    healthy: bool,
    /// Requests in flight; shared with the host's next incarnation when a reload changes its
    /// weight or health, so guards of requests started before the reload still count down.
    active: Arc<AtomicU64>,
    pool: Arc<HostPool>,
    /// When the host joined the cluster, for slow start; kept across reloads.
    joined: Instant,
    /// Consecutive failures and ejection; kept across reloads like `active`.
    pub outlier: Arc<HostOutlier>,
    /// Who the host is (EDS telemetry metadata), for Istio's `destination_*` labels.
    workload: Option<Arc<WorkloadMetadata>>,
    /// Istio's metrics of requests and connections to this workload, shared by the cluster's
    /// hosts of the same workload and kept across reloads; `None` when the host has no workload
    /// metadata, whose traffic counts under the cluster's own.
    istio: Option<Arc<WorkloadSeries>>,
}

impl Host {
    pub fn new(
        address: EndpointAddress,
        weight: u32,
        healthy: bool,
        protocol: UpstreamProtocol,
    ) -> Arc<Host> {
        let limits = Arc::new(Limits::new(
            Default::default(),
            Default::default(),
            Arc::default(),
        ));
        let pool = HostPool::new(address, protocol, limits);
        Host::joined_at(
            pool,
            weight,
            healthy,
            Instant::now(),
            HostIdentity::default(),
        )
    }

    fn joined_at(
        pool: Arc<HostPool>,
        weight: u32,
        healthy: bool,
        joined: Instant,
        identity: HostIdentity,
    ) -> Arc<Host> {
        Arc::new(Host {
            weight: weight.max(1),
            healthy,
            active: Arc::new(AtomicU64::new(0)),
            pool,
            joined,
            outlier: Arc::default(),
            workload: identity.workload,
            istio: identity.istio,
        })
    }

    /// Who the host is, from the control plane's endpoint metadata.
    pub fn workload(&self) -> Option<&WorkloadMetadata> {
        self.workload.as_deref()
    }

    pub fn address(&self) -> &EndpointAddress {
        self.pool.address()
    }

    pub fn pool(&self) -> &Arc<HostPool> {
        &self.pool
    }

    /// Whether the balancer may pick this host: healthy and not ejected.
    pub fn is_available(&self) -> bool {
        self.healthy && !self.outlier.is_ejected()
    }

    /// Whether outlier detection has taken the host out of balancing.
    pub fn is_ejected(&self) -> bool {
        self.outlier.is_ejected()
    }

    pub fn healthy(&self) -> bool {
        self.healthy
    }

    /// When this host (by address) joined the cluster.
    pub fn joined(&self) -> Instant {
        self.joined
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

/// Runtime state kept across reloads: balancer position, counters, circuit breakers (whose
/// thresholds each build updates in place, so slots held by requests in flight stay counted).
pub struct ClusterRuntime {
    pub lb: LbState,
    pub stats: Arc<ClusterStats>,
    pub limits: Arc<Limits>,
    /// Istio's request metrics for this cluster as destination, set up by the first request
    /// (the registry lives with the proxy, not the snapshot) and kept across reloads.
    pub istio: OnceLock<DestinationMetrics>,
    /// The same for requests an inbound listener sends to this (`inbound|PORT||`) cluster,
    /// reported as `reporter="destination"`.
    istio_inbound: OnceLock<DestinationMetrics>,
    /// Istio's TCP metrics of connections relayed to this cluster, by reporter.
    istio_tcp: [OnceLock<TcpMetrics>; 2],
    /// An `ORIGINAL_DST` cluster's hosts: one per destination requests were sent to, made on
    /// first use (with its own pool) and kept across reloads.
    original_dst_hosts: std::sync::Mutex<HashMap<std::net::SocketAddr, Arc<Host>>>,
}

/// Past this many original-destination hosts, the ones with no open connection are dropped
/// when another is added (Envoy removes unused ones every `cleanup_interval`).
const MAX_IDLE_ORIGINAL_DST_HOSTS: usize = 1024;

impl ClusterRuntime {
    fn new(config: &ClusterConfig) -> Self {
        let stats = Arc::new(ClusterStats::new(&config.name));
        ClusterRuntime {
            lb: LbState::default(),
            limits: Arc::new(Limits::new(
                config.circuit_breakers,
                config.connection.clone(),
                stats.clone(),
            )),
            stats,
            istio: OnceLock::new(),
            istio_inbound: OnceLock::new(),
            istio_tcp: Default::default(),
            original_dst_hosts: Default::default(),
        }
    }
}

pub struct Cluster {
    pub name: Arc<str>,
    pub config: Arc<ClusterConfig>,
    pub hosts: Vec<Arc<Host>>,
    /// Built from `hosts` and the config's balancer settings; shared with the previous
    /// snapshot's cluster when neither changed, so a reload does not rebuild rings and tables.
    /// The outlier detector publishes a new one when it ejects or returns a host.
    balancer: Arc<ArcSwap<Balancer>>,
    pub runtime: Arc<ClusterRuntime>,
    /// The outlier detector, when the cluster has `outlier_detection`; kept across reloads
    /// while its settings are unchanged.
    pub outlier: Option<Arc<Detector>>,
    members: Arc<Members>,
    /// The EDS assignment the hosts came from (none for clusters whose endpoints are in their
    /// config), to tell whether a new snapshot may share this cluster as it is.
    assignment: Option<Arc<Vec<Endpoint>>>,
}

impl Cluster {
    /// The cluster a new snapshot holds for `config`, with its endpoints from `assignment`
    /// (EDS) or from the config. Built from the very same config and assignment (the same
    /// allocations, which the xDS cache keeps for resources that did not change), it is
    /// `previous` itself: a response that changed other resources rebuilds nothing here.
    /// Measured with 1,000 services: rebuilding 3,000 unchanged clusters for every response
    /// was two thirds of the CPU a sidecar spent on a change.
    pub fn for_snapshot(
        config: &Arc<ClusterConfig>,
        assignment: Option<&Arc<Vec<Endpoint>>>,
        previous: Option<&Arc<Cluster>>,
    ) -> Arc<Cluster> {
        if let Some(p) = previous {
            let same_assignment = match (&p.assignment, assignment) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            if Arc::ptr_eq(&p.config, config) && same_assignment {
                return p.clone();
            }
        }
        let endpoints: &[Endpoint] = match (assignment, config.discovery) {
            (Some(a), _) => a,
            (None, Discovery::Eds) => &[],
            (None, _) => &config.static_endpoints,
        };
        let mut cluster = Cluster::build(config.clone(), endpoints, previous.map(|p| &**p));
        cluster.assignment = assignment.cloned();
        Arc::new(cluster)
    }

    /// Builds the cluster for a new snapshot, reusing what `previous` had for unchanged parts.
    pub fn build(
        config: Arc<ClusterConfig>,
        endpoints: &[Endpoint],
        previous: Option<&Cluster>,
    ) -> Cluster {
        let runtime = match previous {
            Some(p) => {
                let limits = &p.runtime.limits;
                limits.set(config.circuit_breakers);
                if **limits.connection.load() != config.connection {
                    limits.connection.store(Arc::new(config.connection.clone()));
                }
                p.runtime.clone()
            }
            None => Arc::new(ClusterRuntime::new(&config)),
        };
        let reuse = previous.filter(|p| p.config.protocol == config.protocol);
        let mut old_hosts: HashMap<String, &Arc<Host>> = reuse
            .map(|p| {
                p.hosts
                    .iter()
                    .map(|h| (h.address().to_string(), h))
                    .collect()
            })
            .unwrap_or_default();
        // A protocol change replaces the hosts' pools, but they stay the same members.
        let joined_before: HashMap<String, Instant> = match (previous, reuse) {
            (Some(p), None) => p
                .hosts
                .iter()
                .map(|h| (h.address().to_string(), h.joined))
                .collect(),
            _ => HashMap::new(),
        };
        let mut istio_cells = IstioCells::from_hosts(previous.map_or(&[][..], |p| &p.hosts));
        let hosts: Vec<Arc<Host>> = endpoints
            .iter()
            .map(|ep| match old_hosts.remove(&ep.address.to_string()) {
                Some(h)
                    if h.weight == ep.weight.max(1)
                        && h.healthy == ep.healthy
                        && h.workload == ep.workload =>
                {
                    h.clone()
                }
                Some(h) => Arc::new(Host {
                    weight: ep.weight.max(1),
                    healthy: ep.healthy,
                    active: h.active.clone(),
                    pool: h.pool.clone(),
                    joined: h.joined,
                    outlier: h.outlier.clone(),
                    istio: istio_cells.cell(ep.workload.as_ref()),
                    workload: ep.workload.clone(),
                }),
                None => Host::joined_at(
                    HostPool::new(ep.address.clone(), config.protocol, runtime.limits.clone()),
                    ep.weight,
                    ep.healthy,
                    joined_before
                        .get(&ep.address.to_string())
                        .copied()
                        .unwrap_or_else(Instant::now),
                    HostIdentity {
                        istio: istio_cells.cell(ep.workload.as_ref()),
                        workload: ep.workload.clone(),
                    },
                ),
            })
            .collect();
        let panic_threshold = config.healthy_panic_threshold.get();
        let kept_detector = previous
            .and_then(|p| p.outlier.as_ref())
            .filter(|d| Some(d.config()) == config.outlier_detection.as_ref())
            .cloned();
        if config.outlier_detection.is_none() {
            // Outlier detection switched off: nobody would ever return an ejected host.
            for h in &hosts {
                h.outlier.clear();
            }
        }
        let generation = kept_detector.as_ref().map_or(0, |d| d.generation());
        // The previous balancer fits if built over the same hosts, with the same settings,
        // and no ejection or return happened since it was built.
        let reusable = previous.and_then(|p| {
            let current = p.balancer.load_full();
            let fresh = p.outlier.is_none()
                || p.members
                    .built_generation
                    .load(std::sync::atomic::Ordering::Acquire)
                    == generation;
            (fresh
                && kept_detector.is_some() == p.outlier.is_some()
                && current.fits(&config.lb_policy, panic_threshold, &p.hosts, &hosts))
            .then_some(current)
        });
        let balancer = reusable.unwrap_or_else(|| {
            Arc::new(Balancer::build(&config.lb_policy, panic_threshold, &hosts))
        });
        let slot = Arc::new(ArcSwap::new(balancer));
        let members = Arc::new(Members {
            hosts: hosts.clone(),
            policy: config.lb_policy.clone(),
            panic_threshold,
            slot: slot.clone(),
            built_generation: std::sync::atomic::AtomicU64::new(generation),
        });
        let name: Arc<str> = Arc::from(config.name.as_str());
        let outlier = match (kept_detector, config.outlier_detection) {
            (Some(d), _) => {
                d.set_members(members.clone());
                Some(d)
            }
            (None, Some(od)) => {
                Detector::start(name.clone(), od, runtime.stats.clone(), members.clone())
            }
            (None, None) => None,
        };
        Cluster {
            name,
            balancer: slot,
            hosts,
            config,
            runtime,
            outlier,
            assignment: None,
            members,
        }
    }

    /// The host for a request; `hash` is the request's hash from the route's hash policies
    /// (see `crate::router::request_hash`), read only by the consistent-hashing balancers.
    /// `None` when the cluster has no host to use. Never locks or allocates.
    pub fn pick(&self, hash: Option<u64>) -> Option<&Arc<Host>> {
        let balancer = self.balancer.load();
        let position = balancer.pick_position(&self.runtime.lb, hash)?;
        self.hosts.get(position)
    }

    /// The host of an `ORIGINAL_DST` cluster for a connection originally sent to `dst`: the
    /// request goes where the application sent it. One lock per request on such clusters only
    /// (Istio's `PassthroughCluster`), never held across an await.
    pub fn original_dst_host(&self, dst: std::net::SocketAddr) -> Arc<Host> {
        let mut hosts = self
            .runtime
            .original_dst_hosts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(h) = hosts.get(&dst) {
            return h.clone();
        }
        if hosts.len() >= MAX_IDLE_ORIGINAL_DST_HOSTS {
            hosts.retain(|_, h| h.pool.open_connections() > 0 || h.active_requests() > 0);
        }
        let pool = HostPool::new(
            EndpointAddress::Socket(dst),
            self.config.protocol,
            self.runtime.limits.clone(),
        );
        let host = Host::joined_at(pool, 1, true, Instant::now(), HostIdentity::default());
        hosts.insert(dst, host.clone());
        host
    }

    /// Hosts outlier detection has ejected right now.
    pub fn ejected_hosts(&self) -> usize {
        self.hosts.iter().filter(|h| h.is_ejected()).count()
    }

    /// Tells outlier detection (if the cluster has it) how a try with `host` ended.
    pub fn report(&self, host: &Arc<Host>, outcome: outlier::TryOutcome) {
        if let Some(d) = &self.outlier {
            d.report(host, outcome);
        }
    }

    /// Istio's metrics for a request to this cluster that `host` answered (or, with `None`,
    /// that reached no host): the host's workload's series, created with the first request.
    pub fn istio_metrics<'a>(
        &'a self,
        host: Option<&'a Host>,
        metrics: &IstioMetrics,
    ) -> &'a DestinationMetrics {
        match host.and_then(|h| Some((h.istio.as_deref()?, h.workload()?))) {
            Some((series, workload)) => series.http(metrics, &self.name, workload),
            None => self
                .runtime
                .istio
                .get_or_init(|| metrics.destination(&self.name, None)),
        }
    }

    /// Istio's metrics of a request an inbound listener sent here: the proxy reports as its
    /// own workload, the destination.
    pub fn inbound_istio_metrics(&self, metrics: &IstioMetrics) -> &DestinationMetrics {
        self.runtime
            .istio_inbound
            .get_or_init(|| metrics.inbound(&self.name))
    }

    /// Istio's TCP metrics of connections relayed to this cluster: an outbound one that `host`
    /// answered counts under the host's workload, like its HTTP requests; others (inbound, or
    /// a host without workload metadata) under the cluster's series for `reporter`.
    pub fn tcp_istio_metrics<'a>(
        &'a self,
        host: Option<&'a Host>,
        metrics: &IstioMetrics,
        reporter: Reporter,
    ) -> &'a TcpMetrics {
        let series = host.and_then(|h| Some((h.istio.as_deref()?, h.workload()?)));
        if let (Reporter::Source, Some((series, workload))) = (reporter, series) {
            return series.tcp(metrics, &self.name, workload);
        }
        let slot = match reporter {
            Reporter::Source => 0,
            Reporter::Destination => 1,
        };
        self.runtime.istio_tcp[slot].get_or_init(|| metrics.tcp(&self.name, None, reporter))
    }

    pub fn healthy_hosts(&self) -> usize {
        self.hosts.iter().filter(|h| h.is_available()).count()
    }

    /// Adds the cluster's `envoy_cluster_*` series to a scrape, its gauges read from the state
    /// they describe now.
    pub fn render_stats(&self, page: &mut Page) {
        let stats = &self.runtime.stats;
        let g = &stats.gauges;
        let limits = &self.runtime.limits;
        let set = |gauge: &AtomicU64, v: u64| gauge.store(v, Ordering::Relaxed);
        set(&g.cx_active, limits.connections.load(Ordering::Relaxed));
        set(&g.rq_active, limits.requests.load(Ordering::Relaxed));
        set(&g.rq_pending_active, limits.pending.load(Ordering::Relaxed));
        for ((open, remaining), (_, _, is_open, left)) in g.breakers.iter().zip(limits.gauges()) {
            set(open, u64::from(is_open));
            set(remaining, left);
        }
        set(&g.membership_healthy, self.healthy_hosts() as u64);
        set(&g.membership_total, self.hosts.len() as u64);
        set(&g.ejections_active, self.ejected_hosts() as u64);
        stats.render(page);
    }
}

/// Who a host is, and the metrics cell of its workload.
#[derive(Default)]
struct HostIdentity {
    workload: Option<Arc<WorkloadMetadata>>,
    istio: Option<Arc<WorkloadSeries>>,
}

/// One metrics cell per workload of a cluster, kept from the previous build, so that the
/// hosts of a workload share their series and keep them across reloads.
struct IstioCells(HashMap<Arc<WorkloadMetadata>, Arc<WorkloadSeries>>);

impl IstioCells {
    fn from_hosts(hosts: &[Arc<Host>]) -> Self {
        IstioCells(
            hosts
                .iter()
                .filter_map(|h| Some((h.workload.clone()?, h.istio.clone()?)))
                .collect(),
        )
    }

    fn cell(&mut self, workload: Option<&Arc<WorkloadMetadata>>) -> Option<Arc<WorkloadSeries>> {
        let workload = workload?;
        Some(self.0.entry(workload.clone()).or_default().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Discovery, Finite, LbPolicy, SlowStart};
    use std::time::Duration;

    fn config() -> Arc<ClusterConfig> {
        Arc::new(ClusterConfig {
            name: "c".into(),
            discovery: Discovery::Eds,
            lb_policy: LbPolicy::RoundRobin {
                slow_start: Some(SlowStart {
                    window: Duration::from_secs(60),
                    aggression: Finite::new(1.0).expect("finite"),
                    min_weight: Finite::new(0.1).expect("finite"),
                }),
            },
            healthy_panic_threshold: Finite::new(50.0).expect("finite"),
            protocol: UpstreamProtocol::Http1,
            connect_timeout: Duration::from_secs(1),
            eds_service_name: "c".into(),
            static_endpoints: Vec::new(),
            circuit_breakers: Default::default(),
            connection: Default::default(),
            outlier_detection: None,
        })
    }

    fn endpoint(last: u8, weight: u32) -> Endpoint {
        Endpoint {
            address: EndpointAddress::Socket(std::net::SocketAddr::from(([10, 0, 0, last], 80))),
            weight,
            healthy: true,
            workload: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn hosts_keep_the_time_they_joined_across_reloads() {
        let t0 = Instant::now();
        let first = Cluster::build(config(), &[endpoint(1, 1)], None);
        tokio::time::advance(Duration::from_secs(100)).await;
        // A weight change makes a new host object; it is still the same member.
        let second = Cluster::build(config(), &[endpoint(1, 5), endpoint(2, 1)], Some(&first));
        assert_eq!(second.hosts[0].joined(), t0);
        assert_eq!(second.hosts[1].joined(), t0 + Duration::from_secs(100));
        // Removed and added again: a new member, which ramps up again.
        tokio::time::advance(Duration::from_secs(10)).await;
        let third = Cluster::build(config(), &[endpoint(2, 1)], Some(&second));
        let fourth = Cluster::build(config(), &[endpoint(1, 1), endpoint(2, 1)], Some(&third));
        assert_eq!(fourth.hosts[0].joined(), t0 + Duration::from_secs(110));
        // A protocol change keeps membership too.
        let mut h2 = (*config()).clone();
        h2.protocol = UpstreamProtocol::Http2;
        let fifth = Cluster::build(Arc::new(h2), &[endpoint(2, 1)], Some(&fourth));
        assert_eq!(fifth.hosts[0].joined(), t0 + Duration::from_secs(100));
    }

    #[test]
    fn circuit_breakers_keep_their_counts_across_a_reload_with_new_limits() {
        let eps = [endpoint(1, 1)];
        let first = Cluster::build(config(), &eps, None);
        let held = first.runtime.limits.try_pending().expect("a pending slot");
        let mut tighter = (*config()).clone();
        tighter.circuit_breakers.max_pending_requests = 1;
        let second = Cluster::build(Arc::new(tighter), &eps, Some(&first));
        let limits = &second.runtime.limits;
        assert!(Arc::ptr_eq(limits, &first.runtime.limits));
        // The slot taken before the push still counts against the new limit.
        assert!(limits.try_pending().is_err());
        drop(held);
        assert!(limits.try_pending().is_ok());
        assert!(Arc::ptr_eq(second.hosts[0].pool(), first.hosts[0].pool()));
    }

    #[test]
    fn a_snapshot_shares_a_cluster_built_from_the_same_config_and_assignment() {
        let cfg = config();
        let assignment = Arc::new(vec![endpoint(1, 1)]);
        let first = Cluster::for_snapshot(&cfg, Some(&assignment), None);
        let same = Cluster::for_snapshot(&cfg, Some(&assignment), Some(&first));
        assert!(Arc::ptr_eq(&first, &same));
        // An equal assignment that arrived anew (another allocation) is rebuilt, keeping
        // the host's pool; so is the same assignment under a new config.
        let resent =
            Cluster::for_snapshot(&cfg, Some(&Arc::new(vec![endpoint(1, 1)])), Some(&same));
        assert!(!Arc::ptr_eq(&same, &resent));
        assert!(Arc::ptr_eq(resent.hosts[0].pool(), first.hosts[0].pool()));
        let reconfigured = Cluster::for_snapshot(&config(), Some(&assignment), Some(&resent));
        assert!(!Arc::ptr_eq(&resent, &reconfigured));
        // No assignment yet: an EDS cluster has no hosts, and is rebuilt when one comes.
        let empty = Cluster::for_snapshot(&cfg, None, None);
        assert!(empty.hosts.is_empty());
        let filled = Cluster::for_snapshot(&cfg, Some(&assignment), Some(&empty));
        assert_eq!(filled.hosts.len(), 1);
    }

    #[test]
    fn an_unchanged_cluster_keeps_its_balancer() {
        let eps = [endpoint(1, 1), endpoint(2, 3)];
        let first = Cluster::build(config(), &eps, None);
        let same = Cluster::build(config(), &eps, Some(&first));
        assert!(Arc::ptr_eq(
            &first.balancer.load_full(),
            &same.balancer.load_full()
        ));
        let reweighted = Cluster::build(config(), &[endpoint(1, 2), endpoint(2, 3)], Some(&same));
        assert!(!Arc::ptr_eq(
            &same.balancer.load_full(),
            &reweighted.balancer.load_full()
        ));
        assert!(reweighted.pick(None).is_some());
    }
}

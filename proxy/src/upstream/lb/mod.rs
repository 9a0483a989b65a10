//! Load balancers: pick one host of a cluster for a request, with Envoy's semantics.
//!
//! A [`Balancer`] is built once per cluster build (each snapshot), off the request path: it
//! decides which hosts take traffic (the healthy ones, or all of them in panic mode, see
//! [`hosts_to_use`]) and precomputes what its policy needs (cumulative weights, a hash ring, a
//! Maglev table). Picking then only reads that immutable data, the hosts' atomic request
//! counters and one shared atomic position, so it never locks and never allocates.
//!
//! Policies, one file each:
//! - `round_robin`: plain rotation, or with unequal weights a smooth weighted schedule;
//! - `least_request`: N random choices (P2C) with equal weights, Envoy's
//!   `weight / (active + 1)^bias` otherwise;
//! - `random`: weighted random;
//! - `ring_hash` and `maglev`: consistent hashing on the request's hash, a random host
//!   when the request has none (as Envoy does);
//! - `slow_start` scales the weight of hosts new to the cluster (round robin and least
//!   request only, as in Envoy).
//!
//! Host health is read when the balancer is built: a change in health comes with a new
//! endpoint assignment, hence a new build, and an outlier ejection or return makes the
//! cluster's outlier detector build a new balancer off the request path (see
//! `upstream::outlier`).

mod least_request;
mod maglev;
mod murmur;
mod random;
mod ring_hash;
mod round_robin;
mod slow_start;
mod weights;

use super::Host;
use crate::config::LbPolicy;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

/// The state a balancer keeps between picks; it lives as long as the cluster does, across
/// reloads.
#[derive(Debug)]
pub struct LbState {
    /// Round robin position. It starts at a random place so that many proxies started
    /// together do not all send their first request to the same host (Envoy does the same).
    next: AtomicUsize,
}

impl Default for LbState {
    fn default() -> Self {
        LbState {
            next: AtomicUsize::new(rand::random::<u32>() as usize),
        }
    }
}

/// A cluster's balancer over the hosts that take traffic, ready to pick.
pub struct Balancer {
    hosts: Vec<Arc<Host>>,
    /// Where each of `hosts` is in the cluster's host list the balancer was built from.
    positions: Vec<usize>,
    kind: Kind,
    /// The policy and panic threshold it was built for, so an unchanged cluster can keep it.
    policy: LbPolicy,
    panic_threshold: f64,
}

enum Kind {
    RoundRobin(round_robin::RoundRobin),
    LeastRequest(least_request::LeastRequest),
    Random(random::WeightedRandom),
    RingHash(ring_hash::Ring),
    Maglev(maglev::Maglev),
}

impl Balancer {
    /// Builds the balancer for `all` (the cluster's hosts, in order). `panic_threshold` is
    /// `healthy_panic_threshold` in percent.
    pub fn build(policy: &LbPolicy, panic_threshold: f64, all: &[Arc<Host>]) -> Balancer {
        let positions = positions_to_use(all, panic_threshold);
        let hosts: Vec<Arc<Host>> = positions.iter().map(|&i| all[i].clone()).collect();
        let kind = match policy {
            LbPolicy::RoundRobin { slow_start } => {
                Kind::RoundRobin(round_robin::RoundRobin::new(&hosts, slow_start.clone()))
            }
            LbPolicy::LeastRequest(cfg) => {
                Kind::LeastRequest(least_request::LeastRequest::new(&hosts, cfg))
            }
            LbPolicy::Random => Kind::Random(random::WeightedRandom::new(&hosts)),
            LbPolicy::RingHash(cfg) => Kind::RingHash(ring_hash::Ring::new(&hosts, cfg)),
            LbPolicy::Maglev { table_size } => {
                Kind::Maglev(maglev::Maglev::new(&hosts, *table_size))
            }
        };
        Balancer {
            hosts,
            positions,
            kind,
            policy: policy.clone(),
            panic_threshold,
        }
    }

    /// Whether this balancer, built for `previous_hosts`, serves `policy` over `hosts` as is:
    /// the same settings and the very same host objects in the same order.
    pub fn fits(
        &self,
        policy: &LbPolicy,
        panic_threshold: f64,
        previous_hosts: &[Arc<Host>],
        hosts: &[Arc<Host>],
    ) -> bool {
        self.policy == *policy
            && self.panic_threshold == panic_threshold
            && previous_hosts.len() == hosts.len()
            && previous_hosts
                .iter()
                .zip(hosts)
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }

    /// One host for a request. `hash` is the request's hash from the route's hash policies;
    /// only the hashing policies read it. `None` when there is no host to use.
    pub fn pick(&self, state: &LbState, hash: Option<u64>) -> Option<&Arc<Host>> {
        self.pick_index(state, hash).and_then(|i| self.hosts.get(i))
    }

    /// Like [`pick`](Self::pick), but the position of the host in the list the balancer was
    /// built from.
    pub fn pick_position(&self, state: &LbState, hash: Option<u64>) -> Option<usize> {
        self.pick_index(state, hash)
            .and_then(|i| self.positions.get(i).copied())
    }

    fn pick_index(&self, state: &LbState, hash: Option<u64>) -> Option<usize> {
        if self.hosts.is_empty() {
            return None;
        }
        let index = match &self.kind {
            Kind::RoundRobin(rr) => rr.pick(&state.next, &self.hosts),
            Kind::LeastRequest(lr) => lr.pick(&state.next, &self.hosts),
            Kind::Random(r) => r.pick(),
            Kind::RingHash(ring) => ring.pick(hash.unwrap_or_else(rand::random)),
            Kind::Maglev(table) => table.pick(hash.unwrap_or_else(rand::random)),
        };
        Some(index)
    }

    /// The hosts that take traffic: the healthy ones, or every host in panic mode.
    pub fn hosts(&self) -> &[Arc<Host>] {
        &self.hosts
    }
}

/// Envoy's panic threshold: when the share of available hosts falls below `threshold`
/// percent, traffic goes to every host, since overloading the few healthy ones would be worse
/// than trying the unhealthy ones. A threshold of 0 disables panic mode.
pub fn hosts_to_use(all: &[Arc<Host>], threshold: f64) -> Vec<Arc<Host>> {
    positions_to_use(all, threshold)
        .into_iter()
        .map(|i| all[i].clone())
        .collect()
}

/// [`hosts_to_use`] as positions in `all`.
fn positions_to_use(all: &[Arc<Host>], threshold: f64) -> Vec<usize> {
    let available: Vec<usize> = (0..all.len()).filter(|&i| all[i].is_available()).collect();
    if all.is_empty() {
        return available;
    }
    let healthy_percent = 100.0 * available.len() as f64 / all.len() as f64;
    if healthy_percent < threshold {
        (0..all.len()).collect()
    } else {
        available
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::config::{EndpointAddress, UpstreamProtocol};

    pub fn hosts(weights: &[u32]) -> Vec<Arc<Host>> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| host(i, *w, true))
            .collect()
    }

    pub fn host(i: usize, weight: u32, healthy: bool) -> Arc<Host> {
        let addr = EndpointAddress::Socket(std::net::SocketAddr::from((
            [10, (i >> 16) as u8, (i >> 8) as u8, i as u8],
            8080,
        )));
        Host::new(addr, weight, healthy, UpstreamProtocol::Http1)
    }

    /// Index of `h` in `hosts`.
    pub fn index_of(hosts: &[Arc<Host>], h: &Arc<Host>) -> usize {
        hosts
            .iter()
            .position(|x| Arc::ptr_eq(x, h))
            .expect("picked host is one of the cluster's")
    }

    /// Counts picks per host over `n` picks.
    pub fn counts(
        b: &Balancer,
        st: &LbState,
        n: usize,
        hash: impl Fn(usize) -> Option<u64>,
    ) -> Vec<usize> {
        let mut c = vec![0; b.hosts().len()];
        for i in 0..n {
            let h = b.pick(st, hash(i)).expect("a host");
            c[index_of(b.hosts(), h)] += 1;
        }
        c
    }

    /// Deterministic, well-spread request hashes for the consistent-hash balancers.
    pub fn key(i: usize, seed: u64) -> u64 {
        xxhash_rust::xxh64::xxh64(&(i as u64).to_le_bytes(), seed)
    }

    /// Which host address each of `n` keys (`key(i, seed)`) goes to.
    pub fn owners(b: &Balancer, n: usize, seed: u64) -> Vec<String> {
        let st = LbState::default();
        (0..n)
            .map(|i| {
                b.pick(&st, Some(key(i, seed)))
                    .expect("host")
                    .address()
                    .to_string()
            })
            .collect()
    }

    /// Asserts `observed` successes out of `n` are within 5 standard deviations of `p * n`
    /// (a binomial bound that a correct balancer fails about once in 3.5 million runs).
    pub fn assert_binomial(observed: usize, n: usize, p: f64) {
        let mean = p * n as f64;
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        assert!(
            (observed as f64 - mean).abs() <= 5.0 * sd + 1.0,
            "observed {observed} of {n}, expected {mean:.0} ± {:.0}",
            5.0 * sd
        );
    }
}

#[cfg(test)]
mod tests;

//! Load balancers: pick one host of a cluster for a request.
//!
//! Selection only reads the host list and an atomic counter, so it never locks. Hosts that are
//! not healthy are skipped unless none is healthy, in which case there is nothing to pick.

use super::Host;
use crate::config::LbPolicy;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The state a balancer keeps between picks; it lives as long as the cluster's settings do.
#[derive(Debug, Default)]
pub struct LbState {
    next: AtomicUsize,
}

pub fn pick<'a>(
    policy: LbPolicy,
    state: &LbState,
    hosts: &'a [Arc<Host>],
    weighted: bool,
) -> Option<&'a Arc<Host>> {
    if hosts.is_empty() {
        return None;
    }
    match policy {
        _ if weighted => pick_weighted(state, hosts),
        LbPolicy::RoundRobin => round_robin(state, hosts),
        LbPolicy::Random => random(hosts),
        LbPolicy::LeastRequest => least_request(hosts),
    }
}

fn round_robin<'a>(state: &LbState, hosts: &'a [Arc<Host>]) -> Option<&'a Arc<Host>> {
    let start = state.next.fetch_add(1, Ordering::Relaxed);
    (0..hosts.len())
        .map(|i| &hosts[(start + i) % hosts.len()])
        .find(|h| h.is_available())
}

fn random(hosts: &[Arc<Host>]) -> Option<&Arc<Host>> {
    let start = rand::random_range(0..hosts.len());
    (0..hosts.len())
        .map(|i| &hosts[(start + i) % hosts.len()])
        .find(|h| h.is_available())
}

/// Power of two choices: two random hosts, the one with fewer requests in flight wins.
fn least_request(hosts: &[Arc<Host>]) -> Option<&Arc<Host>> {
    let a = random(hosts)?;
    let b = random(hosts)?;
    Some(if b.active_requests() < a.active_requests() {
        b
    } else {
        a
    })
}

/// Weighted round robin by stride over the cumulative weights: host i gets weight_i of every
/// total_weight picks, spread in order.
fn pick_weighted<'a>(state: &LbState, hosts: &'a [Arc<Host>]) -> Option<&'a Arc<Host>> {
    let total: u64 = hosts
        .iter()
        .filter(|h| h.is_available())
        .map(|h| u64::from(h.weight))
        .sum();
    if total == 0 {
        return None;
    }
    let mut ticket = state.next.fetch_add(1, Ordering::Relaxed) as u64 % total;
    for h in hosts.iter().filter(|h| h.is_available()) {
        let w = u64::from(h.weight);
        if ticket < w {
            return Some(h);
        }
        ticket -= w;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EndpointAddress, UpstreamProtocol};

    fn hosts(weights: &[u32]) -> Vec<Arc<Host>> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let addr =
                    EndpointAddress::Socket(format!("127.0.0.1:{}", 1000 + i).parse().unwrap());
                Host::new(addr, *w, true, UpstreamProtocol::Http1)
            })
            .collect()
    }

    #[test]
    fn round_robin_visits_every_host_in_turn() {
        let hs = hosts(&[1, 1, 1]);
        let st = LbState::default();
        let picks: Vec<_> = (0..6)
            .map(|_| {
                pick(LbPolicy::RoundRobin, &st, &hs, false)
                    .unwrap()
                    .address()
                    .to_string()
            })
            .collect();
        assert_eq!(picks[0..3], picks[3..6]);
        assert_ne!(picks[0], picks[1]);
    }

    #[test]
    fn unhealthy_hosts_are_skipped() {
        let mut hs = hosts(&[1, 1]);
        hs[0] = Host::new(hs[0].address().clone(), 1, false, UpstreamProtocol::Http1);
        let st = LbState::default();
        for _ in 0..4 {
            assert_eq!(
                pick(LbPolicy::RoundRobin, &st, &hs, false)
                    .unwrap()
                    .address(),
                hs[1].address()
            );
        }
    }

    #[test]
    fn weights_are_honoured_exactly_over_a_cycle() {
        let hs = hosts(&[3, 1]);
        let st = LbState::default();
        let first = (0..400)
            .filter(|_| {
                pick(LbPolicy::RoundRobin, &st, &hs, true)
                    .unwrap()
                    .address()
                    == hs[0].address()
            })
            .count();
        assert_eq!(first, 300);
    }

    #[test]
    fn nothing_to_pick_from_an_empty_or_unhealthy_cluster() {
        let st = LbState::default();
        assert!(pick(LbPolicy::RoundRobin, &st, &[], false).is_none());
        let hs = vec![Host::new(
            EndpointAddress::Socket("127.0.0.1:1".parse().unwrap()),
            1,
            false,
            UpstreamProtocol::Http1,
        )];
        assert!(pick(LbPolicy::LeastRequest, &st, &hs, false).is_none());
    }
}

use super::super::test_support::{host, hosts};
use super::super::{Balancer, LbState};
use super::*;
use crate::config::{LbPolicy, RingHashFunction};
use std::collections::HashMap;

fn cfg(min: u64, max: u64) -> RingHash {
    RingHash {
        minimum_ring_size: min,
        maximum_ring_size: max,
        hash_function: RingHashFunction::XxHash,
    }
}

fn policy() -> LbPolicy {
    LbPolicy::RingHash(cfg(1024, 8 << 20))
}

const SEED: u64 = 42;

fn owners(b: &Balancer, n: usize) -> Vec<String> {
    super::super::test_support::owners(b, n, SEED)
}

#[test]
fn ring_size_follows_envoy() {
    // Equal weights: ceil(1024 / 3) points each.
    let ring = Ring::new(&hosts(&[1, 1, 1]), &cfg(1024, 8 << 20));
    assert_eq!(ring.len(), 342 * 3);
    // The lightest host gets a whole number of points: 1/6 of 1026.
    let ring = Ring::new(&hosts(&[1, 2, 3]), &cfg(1024, 8 << 20));
    assert_eq!(ring.len(), 1026);
    // Capped by the maximum, with fractions carried over: 1.5 points each -> 6 in all.
    let ring = Ring::new(&hosts(&[1, 1, 1, 1]), &cfg(1024, 6));
    assert_eq!(ring.len(), 6);
}

#[test]
fn a_hash_goes_to_the_first_point_at_or_after_it() {
    let hs = hosts(&[1, 1, 1]);
    let ring = Ring::new(&hs, &cfg(16, 16));
    for w in ring.points.windows(2) {
        assert!(w[0].hash <= w[1].hash);
        assert_eq!(ring.pick(w[1].hash), w[1].host as usize);
        if w[0].hash < w[1].hash {
            assert_eq!(ring.pick(w[0].hash + 1), w[1].host as usize);
        }
    }
    let last = ring.points.last().expect("points");
    if last.hash < u64::MAX {
        // Past the last point the ring wraps to the first.
        assert_eq!(ring.pick(last.hash + 1), ring.points[0].host as usize);
    }
    assert_eq!(ring.pick(0), ring.points[0].host as usize);
}

#[test]
fn points_are_xxhash_of_address_and_index() {
    let hs = hosts(&[1]);
    let ring = Ring::new(&hs, &cfg(3, 3));
    let mut want: Vec<u64> = (0..3)
        .map(|i| xxh64(format!("{}_{i}", hs[0].address()).as_bytes(), 0))
        .collect();
    want.sort();
    let got: Vec<u64> = ring.points.iter().map(|p| p.hash).collect();
    assert_eq!(got, want);
}

#[test]
fn the_same_hash_always_goes_to_the_same_host() {
    let hs = hosts(&[1, 1, 1, 1]);
    let b = Balancer::build(&policy(), 50.0, &hs);
    // Rebuilt from the same addresses (new host objects, reversed order): same answers.
    let mut again: Vec<_> = (0..4).map(|i| host(i, 1, true)).collect();
    again.reverse();
    let b2 = Balancer::build(&policy(), 50.0, &again);
    assert_eq!(owners(&b, 2000), owners(&b2, 2000));
}

#[test]
fn weights_are_honoured() {
    let hs = hosts(&[1, 2, 3]);
    let b = Balancer::build(&policy(), 50.0, &hs);
    let n = 60_000;
    let mut by_host: HashMap<String, usize> = HashMap::new();
    for o in owners(&b, n) {
        *by_host.entry(o).or_default() += 1;
    }
    // The ring's points are random-like, so shares deviate from the weights by the ring's
    // granularity (a few percent at 1024 points) on top of the sampling noise.
    for (h, w) in hs.iter().zip([1.0, 2.0, 3.0]) {
        let share = by_host[&h.address().to_string()] as f64 / n as f64;
        assert!((share - w / 6.0).abs() < 0.05, "{}: {share}", h.address());
    }
}

#[test]
fn removing_or_adding_one_host_moves_about_one_nth_of_the_keys() {
    let n_hosts = 20;
    let n_keys = 50_000;
    let all: Vec<_> = (0..n_hosts).map(|i| host(i, 1, true)).collect();
    let before = owners(&Balancer::build(&policy(), 50.0, &all), n_keys);

    // Remove the last host: its keys move to the others. Envoy's ring keeps its size, so the
    // others also get more points each (ceil(1024 / 19) instead of ceil(1024 / 20)), and
    // those take over about as many keys again: up to about 2/N move in all.
    let removed = all[n_hosts - 1].address().to_string();
    let after = owners(
        &Balancer::build(&policy(), 50.0, &all[..n_hosts - 1]),
        n_keys,
    );
    let moved: Vec<usize> = (0..n_keys).filter(|i| before[*i] != after[*i]).collect();
    let of_removed = before.iter().filter(|o| **o == removed).count();
    assert_eq!(
        moved.iter().filter(|i| before[**i] == removed).count(),
        of_removed
    );
    assert_moved_about(moved.len(), n_keys, n_hosts);

    // Add one: the new host takes about 1/(N+1) of the keys, and the points the others drop
    // hand about as many again between them.
    let mut more = all.clone();
    more.push(host(n_hosts, 1, true));
    let added = more[n_hosts].address().to_string();
    let after = owners(&Balancer::build(&policy(), 50.0, &more), n_keys);
    let moved: Vec<usize> = (0..n_keys).filter(|i| before[*i] != after[*i]).collect();
    let to_added = moved.iter().filter(|i| after[**i] == added).count();
    let share = to_added as f64 / n_keys as f64;
    let one_nth = 1.0 / (n_hosts + 1) as f64;
    assert!(share > 0.5 * one_nth && share < 1.5 * one_nth, "{share}");
    assert_moved_about(moved.len(), n_keys, n_hosts + 1);
}

/// Between one host's share of the ring (1/N, give or take the ring's granularity: ~1024/N
/// arcs per host spread it by about sqrt(N/1024)) and twice that (see above), with margin.
fn assert_moved_about(moved: usize, keys: usize, n: usize) {
    let share = moved as f64 / keys as f64;
    assert!(
        share > 0.7 / n as f64 && share < 2.5 / n as f64,
        "moved {share:.4} of the keys, expected about {:.4}",
        1.0 / n as f64
    );
}

#[test]
fn without_a_hash_the_pick_is_random() {
    let hs = hosts(&[1, 1]);
    let b = Balancer::build(&policy(), 50.0, &hs);
    let st = LbState::default();
    let n = 10_000;
    let first = (0..n)
        .filter(|_| b.pick(&st, None).expect("host").address() == hs[0].address())
        .count();
    // Each host owns about half of the ring.
    assert!(first > n / 4 && first < 3 * n / 4, "{first}");
}

#[test]
fn murmur_hash_2_places_the_points_when_configured() {
    let hs = hosts(&[1]);
    let ring = Ring::new(
        &hs,
        &RingHash {
            hash_function: RingHashFunction::MurmurHash2,
            ..cfg(3, 3)
        },
    );
    let mut want: Vec<u64> = (0..3)
        .map(|i| {
            let key = format!("{}_{i}", hs[0].address());
            super::super::murmur::murmur_hash2(key.as_bytes(), super::super::murmur::STD_HASH_SEED)
        })
        .collect();
    want.sort();
    let got: Vec<u64> = ring.points.iter().map(|p| p.hash).collect();
    assert_eq!(got, want);
}

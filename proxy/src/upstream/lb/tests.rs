use super::test_support::{host, hosts};
use super::*;
use crate::config::{Finite, LeastRequest, RingHash, RingHashFunction};

fn all_policies() -> Vec<LbPolicy> {
    vec![
        LbPolicy::RoundRobin { slow_start: None },
        LbPolicy::LeastRequest(LeastRequest {
            choice_count: 2,
            active_request_bias: Finite::new(1.0).expect("finite"),
            slow_start: None,
        }),
        LbPolicy::Random,
        LbPolicy::RingHash(RingHash {
            minimum_ring_size: 1024,
            maximum_ring_size: 8 << 20,
            hash_function: RingHashFunction::XxHash,
        }),
        LbPolicy::Maglev { table_size: 65537 },
    ]
}

#[test]
fn nothing_to_pick_from_an_empty_cluster() {
    for policy in all_policies() {
        let b = Balancer::build(&policy, 50.0, &[]);
        assert!(b.pick(&LbState::default(), Some(7)).is_none(), "{policy:?}");
    }
}

#[test]
fn unhealthy_hosts_are_skipped_above_the_panic_threshold() {
    // 2 of 3 healthy: 66% >= 50%.
    let hs = vec![host(0, 1, true), host(1, 1, false), host(2, 1, true)];
    for policy in all_policies() {
        let b = Balancer::build(&policy, 50.0, &hs);
        let st = LbState::default();
        for i in 0..200u64 {
            let h = b
                .pick(&st, Some(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
                .expect("host");
            assert!(h.healthy(), "{policy:?} picked an unhealthy host");
        }
    }
}

#[test]
fn below_the_panic_threshold_every_host_takes_traffic() {
    // 1 of 3 healthy: 33% < 50%, so Envoy balances over all three.
    let hs = vec![host(0, 1, true), host(1, 1, false), host(2, 1, false)];
    let b = Balancer::build(&LbPolicy::RoundRobin { slow_start: None }, 50.0, &hs);
    assert_eq!(b.hosts().len(), 3);
    let st = LbState::default();
    let unhealthy = (0..30)
        .filter(|_| !b.pick(&st, None).expect("host").healthy())
        .count();
    assert_eq!(unhealthy, 20);

    // With no healthy host at all, panic mode still answers.
    let hs = vec![host(0, 1, false)];
    let b = Balancer::build(&LbPolicy::Random, 50.0, &hs);
    assert!(b.pick(&st, None).is_some());
}

#[test]
fn a_zero_threshold_disables_panic_mode() {
    let hs = vec![host(0, 1, true), host(1, 1, false), host(2, 1, false)];
    let b = Balancer::build(&LbPolicy::RoundRobin { slow_start: None }, 0.0, &hs);
    assert_eq!(b.hosts().len(), 1);
    let hs = vec![host(0, 1, false)];
    let b = Balancer::build(&LbPolicy::RoundRobin { slow_start: None }, 0.0, &hs);
    assert!(b.pick(&LbState::default(), None).is_none());
}

#[test]
fn a_balancer_fits_only_the_same_settings_and_hosts() {
    let hs = hosts(&[1, 2]);
    let policy = LbPolicy::Random;
    let b = Balancer::build(&policy, 50.0, &hs);
    assert!(b.fits(&policy, 50.0, &hs, &hs.clone()));
    assert!(!b.fits(&policy, 10.0, &hs, &hs));
    assert!(!b.fits(&LbPolicy::RoundRobin { slow_start: None }, 50.0, &hs, &hs));
    let other = hosts(&[1, 2]);
    assert!(!b.fits(&policy, 50.0, &hs, &other));
    assert!(!b.fits(&policy, 50.0, &hs, &hs[..1]));
}

#[test]
fn round_robin_starts_at_a_random_place() {
    let starts: std::collections::HashSet<usize> = (0..16)
        .map(|_| {
            LbState::default()
                .next
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .collect();
    assert!(starts.len() > 1);
}

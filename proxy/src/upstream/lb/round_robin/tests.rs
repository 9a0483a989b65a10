use super::super::test_support::{assert_binomial, counts, hosts, index_of};
use super::super::{Balancer, LbState};
use super::*;
use crate::config::{Finite, LbPolicy};
use std::time::Duration;

fn rr() -> LbPolicy {
    LbPolicy::RoundRobin { slow_start: None }
}

fn sequence(b: &Balancer, st: &LbState, n: usize) -> Vec<usize> {
    (0..n)
        .map(|_| index_of(b.hosts(), b.pick(st, None).expect("host")))
        .collect()
}

#[test]
fn equal_weights_visit_every_host_in_turn() {
    let hs = hosts(&[1, 1, 1]);
    let b = Balancer::build(&rr(), 50.0, &hs);
    let st = LbState::default();
    let picks = sequence(&b, &st, 9);
    assert_eq!(picks[0..3], picks[3..6]);
    assert_eq!(picks[3..6], picks[6..9]);
    let mut first = picks[0..3].to_vec();
    first.sort();
    assert_eq!(first, [0, 1, 2]);
}

#[test]
fn weights_are_honoured_exactly_over_each_cycle() {
    let hs = hosts(&[3, 1]);
    let b = Balancer::build(&rr(), 50.0, &hs);
    assert_eq!(counts(&b, &LbState::default(), 400, |_| None), [300, 100]);

    // The cycle is the sum of weights over their common factor: 10 picks here.
    let hs = hosts(&[10, 20, 70]);
    let b = Balancer::build(&rr(), 50.0, &hs);
    assert_eq!(counts(&b, &LbState::default(), 10, |_| None), [1, 2, 7]);
}

#[test]
fn weighted_picks_are_spread_without_bursts() {
    // A stride over cumulative weights would send 100 picks in a row to the heavy host and
    // then 10 to the middle one. The schedule must keep every window close to the shares.
    let weights = [1u64, 10, 100];
    let hs = hosts(&[1, 10, 100]);
    let b = Balancer::build(&rr(), 50.0, &hs);
    let picks = sequence(&b, &LbState::default(), 111 * 3);
    for window in [11usize, 37, 60] {
        for start in 0..picks.len() - window {
            for (host, w) in weights.iter().enumerate() {
                let got = picks[start..start + window]
                    .iter()
                    .filter(|p| **p == host)
                    .count() as f64;
                let want = window as f64 * *w as f64 / 111.0;
                assert!(
                    (got - want).abs() <= 3.0,
                    "host {host}: {got} picks in a window of {window}, expected {want:.1}"
                );
            }
        }
    }
}

#[test]
fn schedule_step_is_coprime_with_the_cycle() {
    for weights in [[1u32, 2, 3], [2, 4, 6], [1, 1, 2], [5, 7, 11], [1, 99, 100]] {
        let hs = hosts(&weights);
        let s = Schedule::new(&hs).expect("unequal weights");
        assert_eq!(gcd(s.step, s.weights.total()), 1, "{weights:?}");
    }
    assert!(Schedule::new(&hosts(&[4, 4])).is_none());
}

fn slow_start(window_s: u64) -> LbPolicy {
    LbPolicy::RoundRobin {
        slow_start: Some(crate::config::SlowStart {
            window: Duration::from_secs(window_s),
            aggression: Finite::new(1.0).expect("finite"),
            min_weight: Finite::new(0.1).expect("finite"),
        }),
    }
}

#[tokio::test(start_paused = true)]
async fn a_new_host_ramps_up_over_the_slow_start_window() {
    let old = hosts(&[1]).remove(0);
    tokio::time::advance(Duration::from_secs(3600)).await;
    let new = super::super::test_support::host(1, 1, true);
    let hs = vec![old, new];
    let b = Balancer::build(&slow_start(100), 50.0, &hs);
    let st = LbState::default();

    // 50 s in: the new host's weight is 0.5 against 1, a third of the picks.
    tokio::time::advance(Duration::from_secs(50)).await;
    let n = 30_000;
    let c = counts(&b, &st, n, |_| None);
    assert_binomial(c[1], n, 0.5 / 1.5);

    // Past the window: plain alternation again.
    tokio::time::advance(Duration::from_secs(50)).await;
    assert_eq!(counts(&b, &st, 1000, |_| None), [500, 500]);
}

#[tokio::test(start_paused = true)]
async fn hosts_that_joined_together_keep_equal_shares_while_ramping() {
    let hs = hosts(&[1, 1, 1]);
    let b = Balancer::build(&slow_start(60), 50.0, &hs);
    tokio::time::advance(Duration::from_secs(10)).await;
    // All factors are equal, so every turn is kept: exact rotation.
    assert_eq!(
        counts(&b, &LbState::default(), 300, |_| None),
        [100, 100, 100]
    );
}

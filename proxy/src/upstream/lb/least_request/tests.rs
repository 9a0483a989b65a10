use super::super::test_support::{assert_binomial, counts, host, hosts};
use super::super::{Balancer, LbState};
use crate::config::{self, Finite, LbPolicy, SlowStart};
use std::time::Duration;

fn lr(choice_count: u32, bias: f64, slow_start: Option<SlowStart>) -> LbPolicy {
    LbPolicy::LeastRequest(config::LeastRequest {
        choice_count,
        active_request_bias: Finite::new(bias).expect("finite"),
        slow_start,
    })
}

#[test]
fn equal_weights_take_the_less_loaded_of_the_choices() {
    let hs = hosts(&[1, 1, 1, 1]);
    let _busy: Vec<_> = (0..5).map(|_| hs[0].start_request()).collect();
    let st = LbState::default();
    let n = 40_000;

    // Two choices: the busy host wins only when both samples are it, 1/16 of the time.
    let b = Balancer::build(&lr(2, 1.0, None), 50.0, &hs);
    assert_binomial(counts(&b, &st, n, |_| None)[0], n, 1.0 / 16.0);

    // Four choices: (1/4)^4.
    let b = Balancer::build(&lr(4, 1.0, None), 50.0, &hs);
    assert_binomial(counts(&b, &st, n, |_| None)[0], n, 1.0 / 256.0);
}

#[test]
fn idle_hosts_with_equal_weights_share_evenly() {
    let hs = hosts(&[1, 1, 1]);
    let b = Balancer::build(&lr(2, 1.0, None), 50.0, &hs);
    let n = 30_000;
    for c in counts(&b, &LbState::default(), n, |_| None) {
        assert_binomial(c, n, 1.0 / 3.0);
    }
}

#[test]
fn unequal_weights_are_divided_by_the_load() {
    let hs = hosts(&[1, 2]);
    let b = Balancer::build(&lr(2, 1.0, None), 50.0, &hs);
    let st = LbState::default();
    let n = 30_000;
    // Idle: weights 1 and 2.
    assert_binomial(counts(&b, &st, n, |_| None)[1], n, 2.0 / 3.0);
    // Three requests on the heavy host: 2 / (3 + 1) = 0.5 against 1.
    let _busy: Vec<_> = (0..3).map(|_| hs[1].start_request()).collect();
    assert_binomial(counts(&b, &st, n, |_| None)[1], n, 0.5 / 1.5);

    // A bias of 2 squares the load: 2 / 16 against 1.
    let b = Balancer::build(&lr(2, 2.0, None), 50.0, &hs);
    assert_binomial(counts(&b, &st, n, |_| None)[1], n, 0.125 / 1.125);
}

#[test]
fn large_clusters_are_weighted_the_same_way() {
    // Past the stack buffer the weights are read in two passes.
    let weights: Vec<u32> = (0..200).map(|i| if i % 2 == 0 { 1 } else { 3 }).collect();
    let hs = hosts(&weights);
    let _busy: Vec<_> = hs
        .iter()
        .skip(1)
        .step_by(2)
        .map(|h| h.start_request())
        .collect();
    let b = Balancer::build(&lr(2, 1.0, None), 50.0, &hs);
    let n = 40_000;
    let heavy: usize = counts(&b, &LbState::default(), n, |_| None)
        .iter()
        .skip(1)
        .step_by(2)
        .sum();
    // Heavy hosts: 3 / (1 + 1) = 1.5 against 1.
    assert_binomial(heavy, n, 1.5 / 2.5);
}

#[test]
fn a_zero_bias_is_weighted_round_robin() {
    let hs = hosts(&[1, 2]);
    let _busy: Vec<_> = (0..10).map(|_| hs[1].start_request()).collect();
    let b = Balancer::build(&lr(2, 0.0, None), 50.0, &hs);
    assert_eq!(counts(&b, &LbState::default(), 300, |_| None), [100, 200]);
}

#[tokio::test(start_paused = true)]
async fn slow_start_makes_equal_weights_unequal_while_a_host_ramps() {
    let old = host(0, 1, true);
    tokio::time::advance(Duration::from_secs(600)).await;
    let new = host(1, 1, true);
    let slow = SlowStart {
        window: Duration::from_secs(40),
        aggression: Finite::new(1.0).expect("finite"),
        min_weight: Finite::new(0.1).expect("finite"),
    };
    let b = Balancer::build(&lr(2, 1.0, Some(slow)), 50.0, &[old, new]);
    tokio::time::advance(Duration::from_secs(10)).await;
    let n = 30_000;
    // 10 s of 40: factor 0.25 against 1.
    assert_binomial(
        counts(&b, &LbState::default(), n, |_| None)[1],
        n,
        0.25 / 1.25,
    );
}

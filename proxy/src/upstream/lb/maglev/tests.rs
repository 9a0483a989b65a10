use super::super::test_support::{host, hosts};
use super::super::Balancer;
use super::*;
use crate::config::LbPolicy;

const M: u64 = 65537;

fn policy() -> LbPolicy {
    LbPolicy::Maglev { table_size: M }
}

const SEED: u64 = 7;

fn owners(b: &Balancer, n: usize) -> Vec<String> {
    super::super::test_support::owners(b, n, SEED)
}

fn slots_per_host(table: &Maglev, n_hosts: usize) -> Vec<usize> {
    let mut c = vec![0; n_hosts];
    for h in &table.table {
        c[*h as usize] += 1;
    }
    c
}

#[test]
fn the_table_is_full_and_shared_evenly() {
    let hs = hosts(&[1, 1, 1, 1, 1]);
    let t = Maglev::new(&hs, M);
    assert_eq!(t.table.len(), M as usize);
    for c in slots_per_host(&t, 5) {
        // Equal weights take turns: shares differ by at most one slot.
        assert!((c as i64 - (M / 5) as i64).abs() <= 1, "{c}");
    }
}

#[test]
fn weights_are_honoured() {
    let hs = hosts(&[1, 2, 3]);
    let t = Maglev::new(&hs, M);
    let c = slots_per_host(&t, 3);
    for (i, w) in [1.0, 2.0, 3.0].iter().enumerate() {
        let share = c[i] as f64 / M as f64;
        assert!((share - w / 6.0).abs() < 0.001, "host {i}: {share}");
    }
}

#[test]
fn a_hash_reads_its_slot() {
    let hs = hosts(&[1, 1, 1]);
    let t = Maglev::new(&hs, 13);
    for slot in 0..13u64 {
        assert_eq!(t.pick(slot), t.table[slot as usize] as usize);
        assert_eq!(t.pick(slot + 13 * 1000), t.table[slot as usize] as usize);
    }
}

#[test]
fn the_table_does_not_depend_on_host_order() {
    let hs: Vec<_> = (0..6).map(|i| host(i, 1 + i as u32 % 2, true)).collect();
    let mut reversed: Vec<_> = (0..6).map(|i| host(i, 1 + i as u32 % 2, true)).collect();
    reversed.reverse();
    assert_eq!(
        owners(&Balancer::build(&policy(), 50.0, &hs), 5000),
        owners(&Balancer::build(&policy(), 50.0, &reversed), 5000)
    );
}

#[test]
fn removing_or_adding_one_host_moves_about_one_nth_of_the_keys() {
    let n_hosts = 20;
    let n_keys = 50_000;
    let all: Vec<_> = (0..n_hosts).map(|i| host(i, 1, true)).collect();
    let before = owners(&Balancer::build(&policy(), 50.0, &all), n_keys);

    let removed = all[n_hosts - 1].address().to_string();
    let after = owners(
        &Balancer::build(&policy(), 50.0, &all[..n_hosts - 1]),
        n_keys,
    );
    let moved = (0..n_keys).filter(|i| before[*i] != after[*i]).count();
    // Every key of the removed host must move; Maglev moves a few others too.
    let of_removed = before.iter().filter(|o| **o == removed).count();
    assert!(moved >= of_removed);
    assert_moved_about(moved, n_keys, n_hosts);

    let mut more = all.clone();
    more.push(host(n_hosts, 1, true));
    let after = owners(&Balancer::build(&policy(), 50.0, &more), n_keys);
    let moved = (0..n_keys).filter(|i| before[*i] != after[*i]).count();
    assert_moved_about(moved, n_keys, n_hosts + 1);
}

/// Maglev gives each host an equal share of slots, so the keys that must move are 1/N of
/// them (binomial noise on 50,000 keys is under 0.2%); the paper's disruption on top of that
/// is small, so allow up to 1.5/N.
fn assert_moved_about(moved: usize, keys: usize, n: usize) {
    let share = moved as f64 / keys as f64;
    let one_nth = 1.0 / n as f64;
    assert!(
        share > 0.9 * one_nth && share < 1.5 * one_nth,
        "moved {share:.4} of the keys, expected about {one_nth:.4}"
    );
}

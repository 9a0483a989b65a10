//! Maglev consistent hashing (Eisenbud et al., NSDI 2016), weighted as Envoy does it.
//!
//! A table of prime size M is filled by the hosts in turns: each host walks its own
//! permutation of the slots, `(offset + next * skip) mod M` with `offset = xxHash64(key) mod M`
//! and `skip = xxHash64(key, seed 1) mod (M - 1) + 1`, and takes the first free slot. Hosts
//! are ordered by key (the address) so the table does not depend on the order endpoints
//! arrive in. With weights, a host takes a turn in round `r` only while
//! `r * weight >= slots_taken * max_weight`, so the heaviest host fills a slot every round and
//! the others proportionally less often. A request goes to `table[hash mod M]`.

use super::Host;
use std::sync::Arc;
use xxhash_rust::xxh64::xxh64;

pub(super) struct Maglev {
    /// Host index per slot; empty when there are no hosts.
    table: Vec<u32>,
}

struct Walk {
    host: u32,
    offset: u64,
    skip: u64,
    next: u64,
    weight: u64,
    taken: u64,
}

impl Maglev {
    pub(super) fn new(hosts: &[Arc<Host>], size: u64) -> Maglev {
        if hosts.is_empty() {
            return Maglev { table: Vec::new() };
        }
        let mut keyed: Vec<(String, u32)> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.address().to_string(), i as u32))
            .collect();
        keyed.sort();
        let mut walks: Vec<Walk> = keyed
            .iter()
            .map(|(key, host)| Walk {
                host: *host,
                offset: xxh64(key.as_bytes(), 0) % size,
                skip: xxh64(key.as_bytes(), 1) % (size - 1) + 1,
                next: 0,
                weight: u64::from(hosts[*host as usize].weight),
                taken: 0,
            })
            .collect();
        let max_weight = walks.iter().map(|w| w.weight).max().unwrap_or(1);
        let mut table = vec![u32::MAX; size as usize];
        let mut filled = 0u64;
        let mut round = 1u64;
        while filled < size {
            for walk in walks.iter_mut() {
                if filled == size {
                    break;
                }
                if u128::from(round) * u128::from(walk.weight)
                    < u128::from(walk.taken) * u128::from(max_weight)
                {
                    continue;
                }
                let mut slot = (walk.offset + walk.skip * walk.next) % size;
                while table[slot as usize] != u32::MAX {
                    walk.next += 1;
                    slot = (walk.offset + walk.skip * walk.next) % size;
                }
                table[slot as usize] = walk.host;
                walk.next += 1;
                walk.taken += 1;
                filled += 1;
            }
            round += 1;
        }
        Maglev { table }
    }

    pub(super) fn pick(&self, hash: u64) -> usize {
        if self.table.is_empty() {
            return 0;
        }
        self.table[(hash % self.table.len() as u64) as usize] as usize
    }
}

#[cfg(test)]
mod tests;

//! Ring hash (Ketama-style consistent hashing), as Envoy builds it.
//!
//! Each host gets a number of points on a 64-bit ring proportional to its weight; a request's
//! hash goes to the first point at or after it, wrapping around. The ring size is chosen so the
//! lightest host gets a whole number of points: `scale = min(ceil(min_w * minimum_ring_size) /
//! min_w, maximum_ring_size)` with `min_w` the smallest normalized weight, and hosts take
//! `scale * normalized_weight` points in turn, a running total carrying the fractions. A point
//! is `xxHash64("<address>_<i>")` (or MurmurHash2 when configured), so a host keeps its points whatever the other hosts are,
//! and adding or removing one of N hosts moves about 1/N of the keys.

use super::murmur::{murmur_hash2, STD_HASH_SEED};
use super::Host;
use crate::config::{RingHash, RingHashFunction};
use std::fmt::Write;
use std::sync::Arc;
use xxhash_rust::xxh64::xxh64;

pub(super) struct Ring {
    /// Sorted by hash.
    points: Vec<Point>,
}

struct Point {
    hash: u64,
    host: u32,
}

impl Ring {
    pub(super) fn new(hosts: &[Arc<Host>], cfg: &RingHash) -> Ring {
        if hosts.is_empty() {
            return Ring { points: Vec::new() };
        }
        let total: f64 = hosts.iter().map(|h| f64::from(h.weight)).sum();
        let min_weight = hosts
            .iter()
            .map(|h| f64::from(h.weight) / total)
            .fold(f64::INFINITY, f64::min);
        let scale = ((min_weight * cfg.minimum_ring_size as f64).ceil() / min_weight)
            .min(cfg.maximum_ring_size as f64);
        let mut points = Vec::with_capacity(scale.ceil() as usize);
        let mut key = String::new();
        let (mut current, mut target) = (0.0f64, 0.0f64);
        for (index, host) in hosts.iter().enumerate() {
            target += scale * f64::from(host.weight) / total;
            let mut i = 0u64;
            while current < target {
                key.clear();
                // Writing to a String cannot fail.
                let _ = write!(key, "{}_{i}", host.address());
                let hash = match cfg.hash_function {
                    RingHashFunction::XxHash => xxh64(key.as_bytes(), 0),
                    RingHashFunction::MurmurHash2 => murmur_hash2(key.as_bytes(), STD_HASH_SEED),
                };
                points.push(Point {
                    hash,
                    host: index as u32,
                });
                i += 1;
                current += 1.0;
            }
        }
        points.sort_unstable_by_key(|p| p.hash);
        Ring { points }
    }

    pub(super) fn pick(&self, hash: u64) -> usize {
        let at = self.points.partition_point(|p| p.hash < hash);
        let point = self.points.get(at).or(self.points.first());
        point.map_or(0, |p| p.host as usize)
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.points.len()
    }
}

#[cfg(test)]
mod tests;

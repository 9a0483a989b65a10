//! How one shared map of resources differs from another, computed once for every session.
//!
//! After a change every session moves what it holds and subscribes to from the old shared map
//! onto the new one ([`super::compact`]). Done by each session, that is one walk over every
//! name of the map per session: at 2,000 proxies and 3,000 endpoints, 6 million string
//! comparisons for a change that touched three names, most of a change's CPU (measured). The
//! names that differ between two maps are the same for every session, so they are found once
//! per pair of maps and shared; a session then looks at those names and its own few.

use super::resources::{NamedResources, VersionedResource};
use std::cmp::Ordering;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

/// A name whose resource differs between the old and the new map (absent counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub name: String,
    /// Its version in the old map; `None` if the old map does not have it.
    pub old_version: Option<String>,
    /// Whether the new map has it.
    pub in_new: bool,
}

/// The names of two maps whose versions differ, in name order.
#[derive(Debug, Default)]
pub struct MapDiff {
    pub changed: Vec<Changed>,
}

impl MapDiff {
    /// One ordered walk over the two maps.
    pub fn between(old: &NamedResources, new: &NamedResources) -> Self {
        let mut changed = Vec::new();
        join(old, new, |name, o, n| {
            let old_version = o.map(|r| &r.version);
            if old_version != n.map(|r| &r.version) {
                changed.push(Changed {
                    name: name.clone(),
                    old_version: old_version.cloned(),
                    in_new: n.is_some(),
                });
            }
        });
        MapDiff { changed }
    }
}

/// Walks two maps in key order together, calling `f` once per name in either.
pub fn join<'a>(
    a: &'a NamedResources,
    b: &'a NamedResources,
    mut f: impl FnMut(&'a String, Option<&'a VersionedResource>, Option<&'a VersionedResource>),
) {
    let mut a = a.iter().peekable();
    let mut b = b.iter().peekable();
    loop {
        let order = match (a.peek(), b.peek()) {
            (None, None) => return,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
        };
        match order {
            Ordering::Less => {
                if let Some((k, r)) = a.next() {
                    f(k, Some(r), None);
                }
            }
            Ordering::Greater => {
                if let Some((k, r)) = b.next() {
                    f(k, None, Some(r));
                }
            }
            Ordering::Equal => {
                if let (Some((k, ra)), Some((_, rb))) = (a.next(), b.next()) {
                    f(k, Some(ra), Some(rb));
                }
            }
        }
    }
}

/// How many pairs of maps are remembered: a few per class of proxy and type, for the change
/// in progress.
const REMEMBERED: usize = 64;

/// The differences between recently rebased pairs of maps, shared by every session.
#[derive(Default)]
pub struct MapDiffs {
    /// Each entry keeps both maps alive, so the pointers that key it cannot be reused.
    recent: Mutex<VecDeque<Pair>>,
}

struct Pair {
    old: Arc<NamedResources>,
    new: Arc<NamedResources>,
    diff: Arc<OnceLock<Arc<MapDiff>>>,
}

impl MapDiffs {
    /// The difference from `old` to `new`, computed by the first session that asks (outside
    /// the lock: others asking for the same pair wait for it, the rest do not).
    pub fn between(&self, old: &Arc<NamedResources>, new: &Arc<NamedResources>) -> Arc<MapDiff> {
        if old.is_empty() || new.is_empty() {
            // Every empty map is its own allocation: not worth remembering.
            return Arc::new(MapDiff::between(old, new));
        }
        let cell = {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            let found = recent
                .iter()
                .find(|p| Arc::ptr_eq(&p.old, old) && Arc::ptr_eq(&p.new, new))
                .map(|p| p.diff.clone());
            found.unwrap_or_else(|| {
                if recent.len() == REMEMBERED {
                    recent.pop_front();
                }
                let diff = Arc::new(OnceLock::new());
                recent.push_back(Pair {
                    old: old.clone(),
                    new: new.clone(),
                    diff: diff.clone(),
                });
                diff
            })
        };
        cell.get_or_init(|| Arc::new(MapDiff::between(old, new)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::compact::tests::map;
    use crate::xds::compact::{HeldVersions, NameSet};
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn a_diff_names_what_was_added_removed_and_changed_in_order() {
        let old = map(&[("a", b"1"), ("b", b"1"), ("c", b"1")]);
        let new = map(&[("b", b"2"), ("c", b"1"), ("d", b"1")]);
        let d = MapDiff::between(&old, &new);
        let got: Vec<(&str, bool, bool)> = d
            .changed
            .iter()
            .map(|c| (c.name.as_str(), c.old_version.is_some(), c.in_new))
            .collect();
        assert_eq!(
            got,
            [("a", true, false), ("b", true, true), ("d", false, true)]
        );
        assert_eq!(
            d.changed[1].old_version.as_deref(),
            Some(old["b"].version.as_str())
        );
    }

    #[test]
    fn a_pair_of_maps_is_diffed_once_for_every_session() {
        let diffs = MapDiffs::default();
        let old = map(&[("a", b"1")]);
        let new = map(&[("a", b"2")]);
        let first = diffs.between(&old, &new);
        assert!(Arc::ptr_eq(&first, &diffs.between(&old, &new)));
        assert!(!Arc::ptr_eq(&first, &diffs.between(&new, &old)));
    }

    /// Sets and held versions moved across a series of maps by their differences hold
    /// exactly what plain sets and maps would.
    #[test]
    fn rebasing_by_differences_keeps_the_same_names_and_versions() {
        let diffs = MapDiffs::default();
        // A small deterministic generator: names n0..n11, versions 0..2.
        let mut seed = 7u64;
        let mut next = move |m: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % m
        };
        let mut set = NameSet::default();
        let mut held = HeldVersions::default();
        let mut model_set = BTreeSet::new();
        let mut model_held: BTreeMap<String, String> = BTreeMap::new();
        for _ in 0..200 {
            let mut entries: Vec<(String, String)> = Vec::new();
            for i in 0..12 {
                if next(4) != 0 {
                    entries.push((format!("n{i}"), next(3).to_string()));
                }
            }
            let refs: Vec<(&str, &[u8])> = entries
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_bytes()))
                .collect();
            let m = map(&refs);
            set.rebase(&m, &diffs);
            held.rebase(&m, &diffs);
            // Change a few names, as requests and responses do.
            for _ in 0..3 {
                let name = format!("n{}", next(14));
                match next(4) {
                    0 => {
                        set.insert(&name);
                        model_set.insert(name);
                    }
                    1 => {
                        set.remove(&name);
                        model_set.remove(&name);
                    }
                    2 => {
                        let v = m.get(&name).map_or("x".to_string(), |r| r.version.clone());
                        held.insert(&name, &v);
                        model_held.insert(name, v);
                    }
                    _ => {
                        held.remove(&name);
                        model_held.remove(&name);
                    }
                }
            }
            held.rebase_now(&m, &diffs);
            let names: BTreeSet<String> = set.iter().cloned().collect();
            assert_eq!(names, model_set);
            let versions: BTreeMap<String, String> = held
                .names()
                .map(|n| (n.clone(), held.get(n).unwrap_or_default().to_string()))
                .collect();
            assert_eq!(versions, model_held);
        }
    }
}

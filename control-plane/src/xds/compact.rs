//! Per-session name sets and name -> version maps, stored as their difference from a map every
//! session shares.
//!
//! A sidecar subscribes to the endpoints of every cluster it was sent and, over delta, holds a
//! version of each: kept as plain sets and maps, that is thousands of names per session, the
//! same names in every session, and at 2,000 proxies more memory than everything else weftd
//! holds. Almost always a session's set is exactly the keys of the current shared map (and the
//! versions exactly its versions), so it is kept as a reference to that map plus the few names
//! that differ. [`NameSet::rebase`] and [`HeldVersions::rebase`] move them onto a newer map.

use super::map_diff::MapDiffs;
use super::resources::NamedResources;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// A set of names: the keys of `base`, minus `missing`, plus `extra`.
#[derive(Debug, Default, Clone)]
pub struct NameSet {
    base: Arc<NamedResources>,
    extra: BTreeSet<String>,
    missing: BTreeSet<String>,
}

impl NameSet {
    pub fn contains(&self, name: &str) -> bool {
        self.extra.contains(name) || (self.base.contains_key(name) && !self.missing.contains(name))
    }

    pub fn len(&self) -> usize {
        self.base.len() - self.missing.len() + self.extra.len()
    }

    /// Every name, those of the base first.
    pub fn iter(&self) -> impl Iterator<Item = &String> {
        self.base
            .keys()
            .filter(|k| !self.missing.contains(*k))
            .chain(self.extra.iter())
    }

    pub fn insert(&mut self, name: &str) {
        if self.base.contains_key(name) {
            self.missing.remove(name);
        } else {
            self.extra.insert(name.to_string());
        }
    }

    /// [`NameSet::contains`] for a name known to be a key of the base: no lookup in it.
    pub fn contains_base_key(&self, name: &str) -> bool {
        !self.missing.contains(name)
    }

    pub fn remove(&mut self, name: &str) {
        if self.base.contains_key(name) {
            self.missing.insert(name.to_string());
        } else {
            self.extra.remove(name);
        }
    }

    /// Every name, in order: the base's (but the missing) merged with the extra ones, which
    /// the base does not have.
    fn sorted_iter(&self) -> impl Iterator<Item = &str> {
        let mut base = self
            .base
            .keys()
            .filter(|k| !self.missing.contains(*k))
            .map(String::as_str)
            .peekable();
        let mut extra = self.extra.iter().map(String::as_str).peekable();
        std::iter::from_fn(move || match (base.peek(), extra.peek()) {
            (Some(b), Some(e)) if e < b => extra.next(),
            (Some(_), _) => base.next(),
            (None, _) => extra.next(),
        })
    }

    /// Whether this set holds exactly the names of a request, listed in any order, possibly
    /// repeated. A sotw proxy repeats its whole subscription in every request (thousands of
    /// endpoint names): one ordered walk of the set beside the names, sorted first if they
    /// are not (a lookup per name was a fifth of a sotw change's CPU, measured, whenever the
    /// set was not exactly its base).
    pub fn same_as_list<S: AsRef<str>>(&self, names: &[S]) -> bool {
        if strictly_sorted(names) {
            return names.len() == self.len()
                && self.sorted_iter().zip(names).all(|(a, b)| a == b.as_ref());
        }
        let sorted = sorted_unique(names);
        sorted.len() == self.len() && self.sorted_iter().zip(sorted).all(|(a, b)| a == b)
    }

    /// The names of a request, kept relative to `base`: one ordered walk over the two.
    pub fn of_list<S: AsRef<str>>(names: &[S], base: &Arc<NamedResources>) -> Self {
        Self::of_sorted(&sorted_unique(names), base)
    }

    /// [`NameSet::of_list`] for names already sorted and unique.
    pub fn of_sorted(sorted: &[&str], base: &Arc<NamedResources>) -> Self {
        if sorted.len() * 2 < base.len() {
            // Few names of a large map: relative to nothing (see `rebase`).
            return NameSet {
                base: Arc::default(),
                extra: sorted.iter().map(|n| n.to_string()).collect(),
                missing: BTreeSet::new(),
            };
        }
        let mut missing = BTreeSet::new();
        let mut extra = BTreeSet::new();
        let mut wanted = sorted.iter().peekable();
        for key in base.keys() {
            while let Some(n) = wanted.next_if(|n| **n < key.as_str()) {
                extra.insert(n.to_string());
            }
            if wanted.next_if(|n| **n == key.as_str()).is_none() {
                missing.insert(key.clone());
            }
        }
        extra.extend(wanted.map(|n| n.to_string()));
        NameSet {
            base: base.clone(),
            extra,
            missing,
        }
    }

    /// Whether the set is kept relative to `map` (then [`NameSet::missing`] are the only keys
    /// of `map` it lacks).
    pub fn based_on(&self, map: &Arc<NamedResources>) -> bool {
        Arc::ptr_eq(&self.base, map)
    }

    /// The keys of the base the set lacks.
    pub fn missing(&self) -> impl Iterator<Item = &String> {
        self.missing.iter()
    }

    /// The same set, relative to `base` when that makes the difference smaller: one ordered
    /// walk over the two maps. A set holding few names of a large map (a wildcard type's
    /// empty subscription, measured: 3,000 cluster names copied into `missing` per session,
    /// 0.5 GiB at 2,000 sessions) stays relative to nothing.
    pub fn rebase(&mut self, base: &Arc<NamedResources>, diffs: &MapDiffs) {
        if Arc::ptr_eq(&self.base, base) {
            return;
        }
        if self.len() * 2 < base.len() {
            if !self.base.is_empty() {
                let names = self.iter().cloned().collect();
                *self = NameSet {
                    base: Arc::default(),
                    extra: names,
                    missing: BTreeSet::new(),
                };
            }
            return;
        }
        // Names in both maps keep their membership; of the names only one map has, those
        // the old base has and the set holds become extra, those the new base has and the
        // set lacks become missing.
        let mut missing: BTreeSet<String> = self
            .missing
            .iter()
            .filter(|n| base.contains_key(*n))
            .cloned()
            .collect();
        let mut extra: BTreeSet<String> = self
            .extra
            .iter()
            .filter(|n| !base.contains_key(*n))
            .cloned()
            .collect();
        for c in &diffs.between(&self.base, base).changed {
            match (c.old_version.is_some(), c.in_new) {
                (true, false) if !self.missing.contains(&c.name) => {
                    extra.insert(c.name.clone());
                }
                (false, true) if !self.extra.contains(&c.name) => {
                    missing.insert(c.name.clone());
                }
                _ => {}
            }
        }
        *self = NameSet {
            base: base.clone(),
            extra,
            missing,
        };
    }

    /// Whether the set holds every key of `all`.
    pub fn covers(&self, all: &Arc<NamedResources>) -> bool {
        if Arc::ptr_eq(&self.base, all) {
            return self.missing.is_empty();
        }
        self.len() >= all.len() && all.keys().all(|n| self.contains(n))
    }
}

/// What a delta client holds, name -> version: the versions of `base`, overridden by `diff`
/// (`None`: not held).
#[derive(Debug, Default, Clone)]
pub struct HeldVersions {
    base: Arc<NamedResources>,
    diff: HashMap<String, Option<String>>,
}

impl HeldVersions {
    /// Holding exactly the resources of `map`, in their versions.
    pub fn exactly(map: &Arc<NamedResources>) -> Self {
        HeldVersions {
            base: map.clone(),
            diff: HashMap::new(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        match self.diff.get(name) {
            Some(v) => v.as_deref(),
            None => self.base.get(name).map(|r| r.version.as_str()),
        }
    }

    /// [`HeldVersions::get`] for a name the base has in `base_version`: no lookup in it.
    pub fn get_base_key<'a>(&'a self, name: &str, base_version: &'a str) -> Option<&'a str> {
        match self.diff.get(name) {
            Some(v) => v.as_deref(),
            None => Some(base_version),
        }
    }

    /// Held at `version` from now on (names and versions copied only where they differ
    /// from the base).
    pub fn insert(&mut self, name: &str, version: &str) {
        if self.base.get(name).is_some_and(|r| r.version == version) {
            self.diff.remove(name);
        } else {
            self.diff
                .insert(name.to_string(), Some(version.to_string()));
        }
    }

    /// Whether nothing is held and nothing is kept relative to a map.
    pub fn holds_nothing(&self) -> bool {
        self.base.is_empty() && self.diff.is_empty()
    }

    pub fn remove(&mut self, name: &str) {
        if self.base.contains_key(name) {
            self.diff.insert(name.to_string(), None);
        } else {
            self.diff.remove(name);
        }
    }

    /// Every name held.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        let base_held = self
            .base
            .keys()
            .filter(|k| !matches!(self.diff.get(*k), Some(None)));
        let only_diff = self
            .diff
            .iter()
            .filter(|(k, v)| v.is_some() && !self.base.contains_key(*k))
            .map(|(k, _)| k);
        base_held.chain(only_diff)
    }

    /// The same versions, relative to `base` when that makes the difference smaller (a client
    /// holding a few names of a large map stays relative to nothing). Only the names that
    /// differ between the two maps (found once for every session, see [`MapDiffs`]) and the
    /// session's own difference are looked at.
    pub fn rebase(&mut self, base: &Arc<NamedResources>, diffs: &MapDiffs) {
        if Arc::ptr_eq(&self.base, base) {
            return;
        }
        let held = self.held_count();
        if held == 0 || (self.base.is_empty() && held * 2 < base.len()) {
            // Holding nothing, or a few names of a large map: stays relative to nothing.
            if !self.base.is_empty() {
                *self = HeldVersions::default();
            }
            return;
        }
        let mut diff = HashMap::new();
        for c in &diffs.between(&self.base, base).changed {
            // A name of the session's own difference is held in the version it says.
            if !self.diff.contains_key(&c.name) {
                diff.insert(c.name.clone(), c.old_version.clone());
            }
        }
        for (name, version) in &self.diff {
            if version.as_deref() != base.get(name).map(|r| r.version.as_str()) {
                diff.insert(name.clone(), version.clone());
            }
        }
        if diff.len() <= held {
            *self = HeldVersions {
                base: base.clone(),
                diff,
            };
        } else if !self.base.is_empty() {
            // Relative to nothing: every held name is in the difference.
            let diff = self
                .names()
                .map(|n| (n.clone(), self.get(n).map(str::to_string)))
                .collect();
            *self = HeldVersions {
                base: Arc::default(),
                diff,
            };
        }
    }

    /// How many names are held.
    fn held_count(&self) -> usize {
        let mut held = self.base.len();
        for (name, version) in &self.diff {
            match (self.base.contains_key(name), version.is_some()) {
                (true, false) => held -= 1,
                (false, true) => held += 1,
                _ => {}
            }
        }
        held
    }

    /// [`HeldVersions::rebase`], also when already relative to `base` (after inserts).
    pub fn rebase_now(&mut self, base: &Arc<NamedResources>, diffs: &MapDiffs) {
        if Arc::ptr_eq(&self.base, base) {
            if self.diff.is_empty() {
                return;
            }
            // Drop entries that agree with the base.
            let base = &self.base;
            self.diff.retain(|name, version| {
                base.get(name).map(|r| r.version.as_str()) != version.as_deref()
            });
            return;
        }
        self.rebase(base, diffs);
    }

    /// Whether the versions are kept relative to `map` (then only [`HeldVersions::differing`]
    /// names can differ from it).
    pub fn based_on(&self, map: &Arc<NamedResources>) -> bool {
        Arc::ptr_eq(&self.base, map)
    }

    /// The names whose held version differs from the base's (held or not).
    pub fn differing(&self) -> impl Iterator<Item = &String> {
        self.diff.keys()
    }

    /// How many names are kept outside the shared map (for tests).
    #[cfg(test)]
    fn own_entries(&self) -> usize {
        self.diff.len()
    }
}

fn strictly_sorted<S: AsRef<str>>(names: &[S]) -> bool {
    names.windows(2).all(|w| w[0].as_ref() < w[1].as_ref())
}

/// The names, sorted, each once, borrowed.
pub fn sorted_unique<S: AsRef<str>>(names: &[S]) -> Vec<&str> {
    let mut sorted: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
    if !strictly_sorted(names) {
        sorted.sort_unstable();
        sorted.dedup();
    }
    sorted
}

#[cfg(test)]
pub(super) mod tests;

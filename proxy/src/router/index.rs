//! A per-virtual-host index over the routes' path rules, so that a request evaluates only the
//! routes whose path rule can pass, still in configuration order.
//!
//! Envoy takes the first route whose match passes, and routes are never reordered, so the index
//! only narrows the scan: it yields candidate route indices, every candidate is checked with its
//! full matcher (path again, gRPC, headers, query) in ascending order, and the first that passes
//! wins. The candidates are a superset of the routes whose path rule passes, which makes the
//! answer the linear scan's answer.
//!
//! - `prefix`, `path` and `path_separated_prefix` rules go into a byte trie (see [`trie`]), one
//!   for case-sensitive and one for case-insensitive rules. Walking `:path` once through each
//!   trie gathers sorted lists of candidates.
//! - A regex whose pattern starts with plain literal bytes (`/api/v[0-9]+/...`) can only match
//!   a path starting with those bytes, so it joins the trie under that literal. Other regexes
//!   (an alternation, a leading group or class...) are checked for every request.
//! - The lists are merged with one cursor each, on the stack: no allocation per request unless
//!   more than [`INLINE_LISTS`] lists apply to one request.
//!
//! Small virtual hosts are not indexed: below [`MIN_INDEXED_ROUTES`] routes the plain scan is as
//! fast (see `benches/results/route-match.md`).

mod trie;

#[cfg(test)]
mod tests;

use std::fmt;

use super::matcher::{PathMatcher, PathTarget};
use super::string_match::regex_source;
use super::{RequestView, Route};
use trie::{Rule, Trie, TrieBuilder};

/// Virtual hosts with fewer routes are scanned in order without an index.
pub(crate) const MIN_INDEXED_ROUTES: usize = 24;

/// Candidate lists held on the stack per request; more spill to the heap.
const INLINE_LISTS: usize = 16;

#[derive(Clone)]
pub(crate) struct RouteIndex {
    /// The routes the index was built over; a different count means the virtual host changed
    /// after the table was built, and the index is not used.
    route_count: usize,
    sensitive: Trie,
    insensitive: Trie,
    /// Routes whose path rule the tries cannot narrow, ascending.
    always: Box<[u32]>,
}

impl RouteIndex {
    /// `None` when `routes` is too small for an index to pay off, or too large to number in
    /// `u32` (then the scan is linear, and still correct).
    pub(crate) fn build(routes: &[Route]) -> Option<Self> {
        if routes.len() < MIN_INDEXED_ROUTES {
            return None;
        }
        Self::build_any_size(routes)
    }

    /// Builds whatever the size; tests use it directly on small tables.
    pub(crate) fn build_any_size(routes: &[Route]) -> Option<Self> {
        let mut sensitive = TrieBuilder::default();
        let mut insensitive = TrieBuilder::default();
        let mut always = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let i = u32::try_from(i).ok()?;
            let (key, rule, ignore_case) = match &route.matcher.path {
                PathMatcher::Prefix {
                    prefix,
                    ignore_case,
                } => (prefix.as_bytes(), Rule::Prefix, *ignore_case),
                PathMatcher::Exact { path, ignore_case } => {
                    (path.as_bytes(), Rule::Exact, *ignore_case)
                }
                PathMatcher::SeparatedPrefix {
                    prefix,
                    ignore_case,
                } => (prefix.as_bytes(), Rule::Separated, *ignore_case),
                PathMatcher::Regex(re) => match literal_prefix(regex_source(re)) {
                    Some(literal) => (literal.as_bytes(), Rule::PathPrefix, false),
                    None => {
                        always.push(i);
                        continue;
                    }
                },
            };
            if ignore_case {
                // Lowered again: `PathMatcher`'s fields are public, and the matcher folds only
                // the request side, so a pattern built by hand with capitals still matches.
                insensitive.insert(&key.to_ascii_lowercase(), rule, i);
            } else {
                sensitive.insert(key, rule, i);
            }
        }
        Some(RouteIndex {
            route_count: routes.len(),
            sensitive: sensitive.build(false)?,
            insensitive: insensitive.build(true)?,
            always: always.into(),
        })
    }

    /// Whether the index was built over `routes` (same count; tables are not edited in place).
    pub(crate) fn covers(&self, routes: &[Route]) -> bool {
        self.route_count == routes.len()
    }

    /// The first route of `routes` (those the index was built over) that matches.
    pub(crate) fn find<'r>(
        &self,
        routes: &'r [Route],
        req: &RequestView<'_>,
        target: &PathTarget<'_>,
    ) -> Option<&'r Route> {
        let full = req.path_and_query.as_bytes();
        // Where the path ends, exactly as `PathTarget::new` splits it.
        let path_len = full
            .iter()
            .position(|&b| matches!(b, b'?' | b'#'))
            .unwrap_or(full.len());
        let mut lists = Candidates::new();
        self.sensitive.walk(full, path_len, &mut lists);
        self.insensitive.walk(full, path_len, &mut lists);
        lists.push(&self.always);
        lists.first_passing(|i| {
            routes
                .get(i as usize)
                .filter(|r| r.matcher.matches_target(req, target))
        })
    }
}

impl fmt::Debug for RouteIndex {
    /// A summary: the full structure would repeat every route pattern.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteIndex")
            .field("routes", &self.route_count)
            .field("sensitive_nodes", &self.sensitive.node_count())
            .field("insensitive_nodes", &self.insensitive.node_count())
            .field("always", &self.always.len())
            .finish()
    }
}

/// The literal bytes every match of the regex `pattern` (matched against a whole path) must
/// start with, if there are any. Deliberately conservative: it stops at the first byte that is
/// not a plain path character, drops the last literal when a repetition follows it (`/ab?`
/// needs only `/a`), and gives up on any alternation, since `/a|/b` matches `/b` too.
pub(crate) fn literal_prefix(pattern: &str) -> Option<&str> {
    if pattern.contains('|') {
        return None;
    }
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'~' | b'%');
    let bytes = pattern.as_bytes();
    let mut end = bytes.iter().take_while(|&&b| plain(b)).count();
    if matches!(bytes.get(end), Some(b'*' | b'?' | b'+' | b'{')) {
        end = end.saturating_sub(1);
    }
    (end > 0).then(|| &pattern[..end])
}

/// Sorted candidate lists, one cursor each (a list is advanced by re-slicing it).
pub(crate) struct Candidates<'a> {
    inline: [&'a [u32]; INLINE_LISTS],
    len: usize,
    /// Only used (and only allocates) past `INLINE_LISTS` lists.
    spill: Vec<&'a [u32]>,
}

impl<'a> Candidates<'a> {
    pub(crate) fn new() -> Self {
        Candidates {
            inline: [&[]; INLINE_LISTS],
            len: 0,
            spill: Vec::new(),
        }
    }

    /// `list` must be ascending; empty lists are skipped.
    pub(crate) fn push(&mut self, list: &'a [u32]) {
        if list.is_empty() {
            return;
        }
        if let Some(slot) = self.inline.get_mut(self.len) {
            *slot = list;
            self.len += 1;
        } else {
            if self.spill.is_empty() {
                self.spill.extend_from_slice(&self.inline);
            }
            self.spill.push(list);
        }
    }

    /// Visits the candidates in ascending order until `pass` returns something. A route sits
    /// in one list only (one path rule per route), so no candidate is visited twice.
    pub(crate) fn first_passing<T>(mut self, mut pass: impl FnMut(u32) -> Option<T>) -> Option<T> {
        let lists: &mut [&[u32]] = if self.spill.is_empty() {
            &mut self.inline[..self.len]
        } else {
            &mut self.spill
        };
        loop {
            let mut best: Option<(usize, u32)> = None;
            for (i, list) in lists.iter().enumerate() {
                if let Some(&head) = list.first() {
                    if best.is_none_or(|(_, b)| head < b) {
                        best = Some((i, head));
                    }
                }
            }
            let (i, candidate) = best?;
            if let Some(found) = pass(candidate) {
                return Some(found);
            }
            lists[i] = &lists[i][1..];
        }
    }
}

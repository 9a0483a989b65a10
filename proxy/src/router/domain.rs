//! Virtual host selection by the request's authority, in Envoy's order: exact domain, then the
//! longest suffix wildcard (`*.foo.com`, `*-bar.foo.com`), then the longest prefix wildcard
//! (`foo.*`), then `*`. A wildcard never matches the empty string.
//!
//! Domains are compared case-insensitively and as written, port included: `reviews:9080` and
//! `reviews` are different domains. Each wildcard length gets its own hash map, so a lookup costs
//! one hash probe per distinct wildcard length rather than a scan of every domain.

use std::collections::{HashMap, HashSet};

/// A domain listed twice across the virtual hosts of one route configuration, which Envoy
/// rejects because the choice between the two hosts would be arbitrary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateDomain {
    pub virtual_host: usize,
    pub domain: usize,
    pub value: String,
}

/// Wildcard domains of one length, keyed by their literal part.
type ByLiteral = HashMap<Box<[u8]>, usize>;

#[derive(Debug, Clone, Default)]
pub(crate) struct DomainIndex {
    exact: HashMap<Box<[u8]>, usize>,
    /// `(suffix length, suffix -> virtual host)`, longest first; keys keep the text after `*`.
    suffixes: Vec<(usize, ByLiteral)>,
    /// `(prefix length, prefix -> virtual host)`, longest first; keys keep the text before `*`.
    prefixes: Vec<(usize, ByLiteral)>,
    any: Option<usize>,
}

/// Hosts longer than this are lowered on the heap; real host names (at most 253 bytes plus a
/// port) fit on the stack.
const HOST_BUF: usize = 320;

impl DomainIndex {
    /// `domains[i]` are the domains of virtual host `i`.
    pub(crate) fn build<'a>(
        domains: impl IntoIterator<Item = &'a [String]>,
    ) -> Result<Self, DuplicateDomain> {
        let mut index = DomainIndex::default();
        let mut seen = HashSet::new();
        let mut suffixes: HashMap<usize, ByLiteral> = HashMap::new();
        let mut prefixes: HashMap<usize, ByLiteral> = HashMap::new();
        for (vh, list) in domains.into_iter().enumerate() {
            for (i, domain) in list.iter().enumerate() {
                let lower = domain.to_ascii_lowercase();
                if !seen.insert(lower.clone()) {
                    return Err(DuplicateDomain {
                        virtual_host: vh,
                        domain: i,
                        value: domain.clone(),
                    });
                }
                if lower == "*" {
                    index.any = Some(vh);
                } else if let Some(suffix) = lower.strip_prefix('*') {
                    let key: Box<[u8]> = suffix.as_bytes().into();
                    suffixes.entry(key.len()).or_default().insert(key, vh);
                } else if let Some(prefix) = lower.strip_suffix('*') {
                    let key: Box<[u8]> = prefix.as_bytes().into();
                    prefixes.entry(key.len()).or_default().insert(key, vh);
                } else {
                    index.exact.insert(lower.into_bytes().into(), vh);
                }
            }
        }
        index.suffixes = longest_first(suffixes);
        index.prefixes = longest_first(prefixes);
        Ok(index)
    }

    /// The index of the virtual host serving `host`.
    pub(crate) fn find(&self, host: &str) -> Option<usize> {
        let mut buf = [0u8; HOST_BUF];
        let heap;
        let host: &[u8] = if !host.bytes().any(|b| b.is_ascii_uppercase()) {
            host.as_bytes()
        } else if let Some(slot) = buf.get_mut(..host.len()) {
            slot.copy_from_slice(host.as_bytes());
            slot.make_ascii_lowercase();
            slot
        } else {
            heap = host.to_ascii_lowercase();
            heap.as_bytes()
        };
        if let Some(&vh) = self.exact.get(host) {
            return Some(vh);
        }
        // `len < host.len()`: the wildcard must stand for at least one byte.
        let suffix = self.suffixes.iter().find_map(|(len, map)| {
            (*len < host.len())
                .then(|| map.get(&host[host.len() - len..]))
                .flatten()
        });
        let prefix = || {
            self.prefixes.iter().find_map(|(len, map)| {
                (*len < host.len())
                    .then(|| map.get(&host[..*len]))
                    .flatten()
            })
        };
        suffix.or_else(prefix).copied().or(self.any)
    }
}

fn longest_first(by_len: HashMap<usize, ByLiteral>) -> Vec<(usize, ByLiteral)> {
    let mut v: Vec<_> = by_len.into_iter().collect();
    v.sort_by_key(|(len, _)| std::cmp::Reverse(*len));
    v
}

/// `host` without a trailing `:port`, for route configurations that ignore the port. IPv6
/// literals keep their brackets: `[::1]:80` becomes `[::1]`, while a bare `::1` is left alone.
pub(crate) fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!name.contains(':') || (name.starts_with('[') && name.ends_with(']'))) =>
        {
            name
        }
        _ => host,
    }
}

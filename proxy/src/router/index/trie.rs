//! A path-compressed byte trie over route path patterns, walked once per request along `:path`.
//!
//! Every pattern ends at a node (edges are split where patterns diverge or where one ends), and
//! each node keeps the routes whose pattern ends there, in four ascending lists by how the
//! pattern applies to the request:
//! - `prefix`: `prefix` rules, which look at the whole `:path`, query included, so they apply at
//!   any depth the walk reaches;
//! - `path_prefix`: a necessary literal prefix of a regex, which looks at the path without the
//!   query, so it applies only while the walk is still inside the path;
//! - `separated`: `path_separated_prefix` rules, which apply where the path ends or the next
//!   byte is `/`;
//! - `exact`: `path` rules, which apply only where the path ends.
//!
//! The path is the start of `:path` (it ends at the first `?` or `#`), so one walk over `:path`
//! serves all four. A case-insensitive trie holds lowercased patterns and folds request bytes
//! as it walks, so nothing is lowered into a buffer.

use std::collections::BTreeMap;
use std::ops::Range;

use super::Candidates;

/// Which list of a node a route joins, see the module note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rule {
    Prefix,
    PathPrefix,
    Separated,
    Exact,
}

#[derive(Debug, Clone, Default)]
struct Lists {
    prefix: Vec<u32>,
    path_prefix: Vec<u32>,
    separated: Vec<u32>,
    exact: Vec<u32>,
}

impl Lists {
    fn get_mut(&mut self, rule: Rule) -> &mut Vec<u32> {
        match rule {
            Rule::Prefix => &mut self.prefix,
            Rule::PathPrefix => &mut self.path_prefix,
            Rule::Separated => &mut self.separated,
            Rule::Exact => &mut self.exact,
        }
    }
}

/// Collects patterns in route order, then freezes into a [`Trie`].
#[derive(Debug, Default)]
pub(super) struct TrieBuilder {
    keys: BTreeMap<Box<[u8]>, Lists>,
}

impl TrieBuilder {
    /// Routes must be inserted in ascending order so that every list stays sorted.
    pub(super) fn insert(&mut self, key: &[u8], rule: Rule, route: u32) {
        let lists = self.keys.entry(key.into()).or_default();
        let list = lists.get_mut(rule);
        debug_assert!(list.last().is_none_or(|&last| last < route));
        list.push(route);
    }

    /// `None` only if the node ids would not fit in `u32` (more than ~2 billion patterns).
    pub(super) fn build(self, fold: bool) -> Option<Trie> {
        let keys: Vec<(Box<[u8]>, Lists)> = self.keys.into_iter().collect();
        let mut trie = Trie {
            nodes: Vec::new(),
            fold,
        };
        if keys.is_empty() {
            return Some(trie);
        }
        let mut children: Vec<Vec<(u8, u32)>> = Vec::new();
        // Iterative, so that deeply nested patterns cannot exhaust the stack of the task that
        // compiles the configuration.
        let mut work = vec![Pending {
            parent: None,
            keys: 0..keys.len(),
            label_start: 0,
            depth: 0,
        }];
        while let Some(p) = work.pop() {
            let id = u32::try_from(trie.nodes.len()).ok()?;
            let first = &keys[p.keys.start].0;
            let label: Box<[u8]> = first[p.label_start..p.depth].into();
            if let (Some(parent), Some(&byte)) = (p.parent, label.first()) {
                children[parent as usize].push((byte, id));
            }
            let mut node = Node {
                label,
                ..Node::default()
            };
            let mut rest = p.keys.clone();
            if first.len() == p.depth {
                // Keys are sorted and unique, so only the first can end exactly here.
                let own = &keys[p.keys.start].1;
                node.prefix = own.prefix.as_slice().into();
                node.path_prefix = own.path_prefix.as_slice().into();
                node.separated = own.separated.as_slice().into();
                node.exact = own.exact.as_slice().into();
                node.has_routes = true;
                rest.start += 1;
            }
            trie.nodes.push(node);
            children.push(Vec::new());
            // The keys left all extend past `depth`; group them by their next byte.
            let mut start = rest.start;
            while start < rest.end {
                let byte = keys[start].0[p.depth];
                let mut end = start + 1;
                while end < rest.end && keys[end].0[p.depth] == byte {
                    end += 1;
                }
                // Sorted keys: the group's common prefix is that of its first and last key.
                let depth = common_prefix(&keys[start].0, &keys[end - 1].0);
                work.push(Pending {
                    parent: Some(id),
                    keys: start..end,
                    label_start: p.depth,
                    depth,
                });
                start = end;
            }
        }
        for (node, mut kids) in trie.nodes.iter_mut().zip(children) {
            kids.sort_unstable_by_key(|&(byte, _)| byte);
            node.child_bytes = kids.iter().map(|&(byte, _)| byte).collect();
            node.children = kids.iter().map(|&(_, id)| id).collect();
        }
        Some(trie)
    }
}

struct Pending {
    parent: Option<u32>,
    /// Keys sharing `key[..depth]`.
    keys: Range<usize>,
    /// Where the new node's edge label starts in the keys.
    label_start: usize,
    depth: usize,
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[derive(Debug, Clone)]
pub(super) struct Trie {
    /// `nodes[0]` is the root (empty label); no nodes when no pattern was inserted.
    nodes: Vec<Node>,
    /// Patterns are lowercase and request bytes are lowered while walking.
    fold: bool,
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// The bytes on the edge from the parent.
    label: Box<[u8]>,
    /// First byte of each child's label, sorted; `children[i]` starts with `child_bytes[i]`.
    child_bytes: Box<[u8]>,
    children: Box<[u32]>,
    prefix: Box<[u32]>,
    path_prefix: Box<[u32]>,
    separated: Box<[u32]>,
    exact: Box<[u32]>,
    /// Whether any of the four lists is non-empty; most nodes on a walk only branch.
    has_routes: bool,
}

/// Where `byte` is in the sorted `bytes`. Most nodes have a handful of children, where a plain
/// scan beats a binary search (its branch-free loop was the hottest part of the walk in a profile
/// of `benches/route_match.rs`).
fn child_position(bytes: &[u8], byte: u8) -> Option<usize> {
    if bytes.len() <= 16 {
        bytes.iter().position(|&b| b == byte)
    } else {
        bytes.binary_search(&byte).ok()
    }
}

impl Trie {
    pub(super) fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Adds to `out` the lists of every pattern that `full` satisfies, where the path (without
    /// query) is `full[..path_len]`.
    pub(super) fn walk<'a>(&'a self, full: &[u8], path_len: usize, out: &mut Candidates<'a>) {
        let Some(mut node) = self.nodes.first() else {
            return;
        };
        let mut depth = 0;
        loop {
            if node.has_routes {
                out.push(&node.prefix);
                if depth == path_len {
                    out.push(&node.path_prefix);
                    out.push(&node.separated);
                    out.push(&node.exact);
                } else if depth < path_len {
                    out.push(&node.path_prefix);
                    if full[depth] == b'/' {
                        out.push(&node.separated);
                    }
                }
            }
            let Some(&byte) = full.get(depth) else {
                return;
            };
            let byte = if self.fold {
                byte.to_ascii_lowercase()
            } else {
                byte
            };
            let Some(i) = child_position(&node.child_bytes, byte) else {
                return;
            };
            let Some(child) = self.nodes.get(node.children[i] as usize) else {
                return;
            };
            let end = depth + child.label.len();
            let Some(seen) = full.get(depth..end) else {
                return;
            };
            // Labels are short: a byte loop beats a call to `memcmp`.
            let same = if self.fold {
                seen.iter()
                    .zip(&child.label)
                    .all(|(s, l)| s.to_ascii_lowercase() == *l)
            } else {
                seen.iter().zip(&child.label).all(|(s, l)| s == l)
            };
            if !same {
                return;
            }
            depth = end;
            node = child;
        }
    }
}

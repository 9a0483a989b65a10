//! A cluster a route sends to, by name.

use std::sync::Arc;

/// The `Arc<str>` lets the request path carry the name without copying it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClusterTarget {
    pub name: Arc<str>,
}

impl ClusterTarget {
    pub fn new(name: &str) -> Self {
        ClusterTarget { name: name.into() }
    }
}

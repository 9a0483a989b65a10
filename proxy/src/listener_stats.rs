//! Listener counters under Envoy's names (`listener.<address>.downstream_cx_total` and so on),
//! rendered on `/stats/prometheus` the way Envoy tags them: `envoy_listener_<stat>` with an
//! `envoy_listener_address` label.
//!
//! A module of its own, below both the listeners that count and the context that holds the
//! table, so neither depends on the other.

use crate::envoy_stats::{Page, StatScope};
use metrics::Label;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

pub struct ListenerStats {
    scope: StatScope,
    /// Connections accepted, including the ones then refused for a limit.
    pub downstream_cx_total: Arc<AtomicU64>,
    /// Connections closed at accept because `--max-downstream-connections` were open.
    pub downstream_global_cx_overflow: Arc<AtomicU64>,
}

impl ListenerStats {
    fn new(address: &str) -> Self {
        let scope = StatScope::new(vec![Label::new(
            "envoy_listener_address",
            address.to_string(),
        )]);
        ListenerStats {
            downstream_cx_total: scope.counter("envoy_listener_downstream_cx_total"),
            downstream_global_cx_overflow: scope
                .counter("envoy_listener_downstream_global_cx_overflow"),
            scope,
        }
    }
}

/// The counters of every listener bound since start, keyed by Envoy's address form
/// (`127.0.0.1_15001`). Locked only when a listener binds and when stats are rendered.
#[derive(Default)]
pub struct ListenerStatsTable(Mutex<BTreeMap<String, Arc<ListenerStats>>>);

impl ListenerStatsTable {
    /// The counters for `addr`, kept across rebinds so they only ever grow.
    pub fn for_address(&self, addr: SocketAddr) -> Arc<ListenerStats> {
        let key = format!("{}_{}", addr.ip(), addr.port());
        let mut table = self.0.lock().unwrap_or_else(|p| p.into_inner());
        table
            .entry(key)
            .or_insert_with_key(|key| Arc::new(ListenerStats::new(key)))
            .clone()
    }

    /// Adds every listener's series to a scrape.
    pub fn render(&self, page: &mut Page) {
        let table = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for s in table.values() {
            page.add(&s.scope);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn counters_render_with_envoys_names_and_address_label() {
        let table = ListenerStatsTable::default();
        let addr: SocketAddr = "127.0.0.1:15001".parse().unwrap();
        table
            .for_address(addr)
            .downstream_global_cx_overflow
            .fetch_add(3, Ordering::Relaxed);
        // A rebind at the same address keeps counting on the same counters.
        table
            .for_address(addr)
            .downstream_global_cx_overflow
            .fetch_add(1, Ordering::Relaxed);
        let mut page = Page::default();
        table.render(&mut page);
        let mut out = String::new();
        page.render(&mut out);
        assert!(out.contains(
            "envoy_listener_downstream_global_cx_overflow{envoy_listener_address=\"127.0.0.1_15001\"} 4\n"
        ), "{out}");
        assert!(out.contains("# TYPE envoy_listener_downstream_cx_total counter\n"));
    }
}

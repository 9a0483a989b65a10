//! The one immutable value the request path reads. The xDS client builds a new [`Snapshot`] off
//! to the side and publishes it in one step; a request loads it once and keeps using it to the
//! end, so a reload never changes the configuration under an in-flight request.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use crate::config::{HttpConnectionConfig, ListenerConfig, RouteSource};
use crate::router::RouteTable;
use crate::upstream::Cluster;

#[derive(Default)]
pub struct Snapshot {
    pub listeners: HashMap<String, Arc<ListenerConfig>>,
    /// The listeners with an address, by address: where `use_original_dst` hands connections.
    pub listeners_by_address: HashMap<SocketAddr, Arc<ListenerConfig>>,
    /// Route configurations received over RDS, by name.
    pub routes: HashMap<String, Arc<RouteTable>>,
    /// Run-time clusters (configuration plus pools and balancer state), by name.
    pub clusters: HashMap<Arc<str>, Arc<Cluster>>,
    /// Accepted version per type URL.
    pub versions: BTreeMap<String, String>,
    /// Whether every resource the listeners and clusters refer to has arrived.
    pub complete: bool,
}

impl Snapshot {
    /// A route configuration received over RDS.
    pub fn route_table(&self, name: &str) -> Option<&Arc<RouteTable>> {
        self.routes.get(name)
    }

    /// The route table a connection manager routes with: its inline one, or the RDS one it
    /// names (which may not have arrived yet).
    pub fn route_table_for<'a>(
        &'a self,
        hcm: &'a HttpConnectionConfig,
    ) -> Option<&'a Arc<RouteTable>> {
        match &hcm.route_source {
            RouteSource::Inline(table) => Some(table),
            RouteSource::Rds(name) => self.route_table(name),
        }
    }

    /// The listener for a connection originally sent to `dst`: the one at exactly that address,
    /// else the one at the wildcard address of its family on that port (Envoy's order).
    pub fn listener_at(&self, dst: SocketAddr) -> Option<&Arc<ListenerConfig>> {
        let wildcard: IpAddr = match dst {
            SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        self.listeners_by_address.get(&dst).or_else(|| {
            self.listeners_by_address
                .get(&SocketAddr::new(wildcard, dst.port()))
        })
    }

    pub fn index_by_address(
        listeners: &HashMap<String, Arc<ListenerConfig>>,
    ) -> HashMap<SocketAddr, Arc<ListenerConfig>> {
        let mut by_address = HashMap::new();
        // Sorted by name, so which of two listeners on one address wins does not depend on
        // hash order (LDS should not send two; Envoy would refuse the second to bind).
        let mut sorted: Vec<_> = listeners.values().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        for l in sorted {
            if let Some(addr) = l.address {
                by_address.entry(addr).or_insert_with(|| l.clone());
            }
        }
        by_address
    }

    pub fn cluster(&self, name: &str) -> Option<&Arc<Cluster>> {
        self.clusters.get(name)
    }
}

// Clusters hold connection pools, which have no useful `Debug`; names say enough.
impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("listeners", &self.listeners.keys().collect::<Vec<_>>())
            .field("routes", &self.routes.keys().collect::<Vec<_>>())
            .field("clusters", &self.clusters.keys().collect::<Vec<_>>())
            .field("versions", &self.versions)
            .field("complete", &self.complete)
            .finish()
    }
}

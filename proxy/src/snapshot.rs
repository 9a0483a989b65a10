//! The one immutable value the request path reads. The xDS client builds a new [`Snapshot`] off
//! to the side and publishes it in one step; a request loads it once and keeps using it to the
//! end, so a reload never changes the configuration under an in-flight request.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use crate::config::{ListenerConfig, RouteSource};
use crate::router::RouteTable;
use crate::upstream::Cluster;

#[derive(Default)]
pub struct Snapshot {
    pub listeners: HashMap<String, Arc<ListenerConfig>>,
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

    /// The route table a listener routes with: its inline one, or the RDS one it names (which may
    /// not have arrived yet).
    pub fn route_table_for<'a>(
        &'a self,
        listener: &'a ListenerConfig,
    ) -> Option<&'a Arc<RouteTable>> {
        match &listener.route_source {
            RouteSource::Inline(table) => Some(table),
            RouteSource::Rds(name) => self.route_table(name),
        }
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

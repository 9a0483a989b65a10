//! Translate once, share everywhere.
//!
//! Clusters and endpoints do not depend on the proxy: they are translated once per config
//! snapshot and every session holds the same maps. Listeners and routes do, but only through a
//! few fields of the proxy's identity, so they are translated once per class of proxy, keyed by
//! exactly what their translation reads:
//!
//! - the outbound listener reads the proxy's outbound address and, when the mesh config has
//!   a tracing provider, the namespace, workload name and the labels tracing reads (canonical
//!   service and revision, Telemetry selectors);
//! - the route configuration reads only the proxy's namespace (short host names, and
//!   `sourceNamespace` matches), the values of the labels that some VirtualService's
//!   `sourceLabels` names and the Sidecar in force (which hosts it reaches, see `scope`).
//!   Other labels cannot change a route, so they are not in the key.
//! - clusters and endpoints: those of the hosts the proxy's scope reaches, picked by name
//!   from the shared maps once per scope class.
//!
//! The caches live in the snapshot, so a new configuration starts empty and the old entries go
//! with the old snapshot once no session holds it. Work for a class happens at most once even
//! when many sessions of the class ask at the same moment: the later ones wait for the first.

use super::{endpoints, listeners, routes, MeshSnapshot};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use xds_protos::node::NodeIdentity;
use xds_protos::snapshot::{NamedResources, Resources, VersionedResource};
use xds_protos::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE};

/// What the route configuration of a proxy depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteClass {
    pub namespace: String,
    /// The proxy's values of the labels some `sourceLabels` match names.
    pub labels: BTreeMap<String, String>,
    /// The Sidecar in force (see `scope`): it decides which hosts get virtual hosts.
    pub sidecar: Option<(String, String)>,
}

/// How many translations a snapshot ran, by part: the figure that must not grow with the
/// number of proxies in one class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TranslationCounts {
    pub node_independent: u64,
    pub listeners: u64,
    pub routes: u64,
}

struct NodeIndependent {
    clusters: Arc<NamedResources>,
    endpoints: Arc<NamedResources>,
}

type Slot = Arc<OnceLock<Arc<NamedResources>>>;

/// The per-snapshot caches.
#[derive(Default)]
pub(super) struct TranslationCache {
    node_independent: OnceLock<NodeIndependent>,
    listeners: Mutex<HashMap<NodeIdentity, Slot>>,
    routes: Mutex<HashMap<RouteClass, Slot>>,
    /// Every label key a `sourceLabels` match names.
    source_label_keys: BTreeSet<String>,
    counts: Counts,
}

#[derive(Default)]
struct Counts {
    node_independent: AtomicU64,
    listeners: AtomicU64,
    routes: AtomicU64,
}

impl TranslationCache {
    pub(super) fn new(config: &crate::model::ConfigSet) -> Self {
        let source_label_keys = config
            .virtual_services
            .iter()
            .flat_map(|vs| vs.spec.http.iter())
            .flat_map(|http| http.r#match.iter())
            .flat_map(|m| m.source_labels.keys().cloned())
            .collect();
        TranslationCache {
            source_label_keys,
            ..Default::default()
        }
    }
}

impl MeshSnapshot {
    /// The resources of `node`, from the caches (translating what is missing).
    pub fn generate_shared(&self, node: &NodeIdentity) -> Resources {
        let scoped = self.scoped_of(self.scope_class(node));
        let mut out = Resources::default();
        out.set_type(CLUSTER, scoped.clusters.clone());
        out.set_type(ENDPOINT, scoped.endpoints.clone());
        out.set_type(LISTENER, self.listeners_of(node));
        out.set_type(ROUTE, self.routes_of(node));
        out
    }

    /// Translates the node-independent part now, so that the first session does not wait.
    pub fn warm(&self) {
        self.node_independent();
    }

    pub fn translation_counts(&self) -> TranslationCounts {
        let c = &self.cache.counts;
        TranslationCounts {
            node_independent: c.node_independent.load(Ordering::Relaxed),
            listeners: c.listeners.load(Ordering::Relaxed),
            routes: c.routes.load(Ordering::Relaxed),
        }
    }

    /// The class whose route configuration `node` gets.
    pub fn route_class(&self, node: &NodeIdentity) -> RouteClass {
        RouteClass {
            sidecar: self.scope_class(node).sidecar,
            namespace: node.namespace.clone(),
            labels: node
                .labels
                .iter()
                .filter(|(k, _)| self.cache.source_label_keys.contains(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// The scope of a class (see `scope`), with the clusters and endpoints it reaches.
    fn scoped_of(&self, class: super::scope::ScopeClass) -> Arc<super::scope::Scoped> {
        let shared = self.node_independent();
        self.scoped(&class, (&shared.clusters, &shared.endpoints), |view| {
            let own = view.node_independent();
            (own.clusters.clone(), own.endpoints.clone())
        })
    }

    fn node_independent(&self) -> &NodeIndependent {
        self.cache.node_independent.get_or_init(|| {
            self.cache
                .counts
                .node_independent
                .fetch_add(1, Ordering::Relaxed);
            let mut clusters = NamedResources::new();
            for c in super::clusters::clusters(self) {
                let any = xds_protos::any::pack(CLUSTER, &c);
                clusters.insert(c.name, Arc::new(VersionedResource::new(any)));
            }
            let mut cla = NamedResources::new();
            for a in endpoints::load_assignments(self) {
                let any = xds_protos::any::pack(ENDPOINT, &a);
                cla.insert(a.cluster_name, Arc::new(VersionedResource::new(any)));
            }
            NodeIndependent {
                clusters: Arc::new(clusters),
                endpoints: Arc::new(cla),
            }
        })
    }

    fn listeners_of(&self, node: &NodeIdentity) -> Arc<NamedResources> {
        let representative = self.listener_class(node);
        let slot = slot(&self.cache.listeners, representative.clone());
        slot.get_or_init(|| {
            self.cache.counts.listeners.fetch_add(1, Ordering::Relaxed);
            let mut out = NamedResources::new();
            for l in listeners::listeners(self, &representative) {
                let any = xds_protos::any::pack(LISTENER, &l);
                out.insert(l.name, Arc::new(VersionedResource::new(any)));
            }
            Arc::new(out)
        })
        .clone()
    }

    /// The part of `node` its listeners are translated from.
    fn listener_class(&self, node: &NodeIdentity) -> NodeIdentity {
        let mut class = NodeIdentity {
            outbound_addr: node.outbound_addr.clone(),
            mode: node.mode,
            ..Default::default()
        };
        let mc = &self.options.mesh_config;
        if mc.enable_tracing && !mc.tracing_providers.is_empty() {
            let keys: BTreeSet<&str> = super::tracing::label_keys(self).collect();
            class.namespace = node.namespace.clone();
            class.workload = node.workload.clone();
            class.labels = node
                .labels
                .iter()
                .filter(|(k, _)| keys.contains(k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        }
        class
    }

    fn routes_of(&self, node: &NodeIdentity) -> Arc<NamedResources> {
        let class = self.route_class(node);
        let slot = slot(&self.cache.routes, class.clone());
        slot.get_or_init(|| {
            self.cache.counts.routes.fetch_add(1, Ordering::Relaxed);
            // Routes read the namespace and the source labels only, from the mesh as the
            // proxy's scope sees it.
            let scope = super::scope::ScopeClass {
                namespace: class.namespace.clone(),
                sidecar: class.sidecar,
            };
            let scoped = self.scoped_of(scope);
            let view = scoped.scope.view.as_ref().unwrap_or(self);
            let representative = NodeIdentity {
                namespace: class.namespace,
                labels: class.labels,
                ..Default::default()
            };
            let rc = routes::http_proxy_routes(view, &representative);
            let any = xds_protos::any::pack(ROUTE, &rc);
            let mut out = NamedResources::new();
            out.insert(rc.name, Arc::new(VersionedResource::new(any)));
            Arc::new(out)
        })
        .clone()
    }
}

/// The slot of `key`, created empty if new. The map's lock is held only to find the slot, not
/// while translating, so different classes translate in parallel.
fn slot<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, Slot>>, key: K) -> Slot {
    let mut guard = match map.lock() {
        Ok(g) => g,
        // A panic while holding this lock cannot leave the map inconsistent (one insert).
        Err(poisoned) => poisoned.into_inner(),
    };
    guard.entry(key).or_default().clone()
}

#[cfg(test)]
mod tests;

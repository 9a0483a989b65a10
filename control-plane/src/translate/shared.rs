//! Translate once, share everywhere.
//!
//! Clusters and endpoints do not depend on the proxy: they are translated once per config
//! snapshot and every session holds the same maps. Listeners and routes do, but only through a
//! few fields of the proxy's identity, so they are translated once per class of proxy, keyed by
//! exactly what their translation reads:
//!
//! - the outbound listener reads the proxy's outbound address and, when the mesh config has
//!   a tracing provider, the namespace, workload name and the labels tracing reads (canonical
//!   service and revision, Telemetry selectors); when some Telemetry sets `accessLogging`,
//!   the namespace and the labels Telemetry selectors read;
//! - the route configuration reads only the proxy's namespace (short host names, and
//!   `sourceNamespace` matches), the values of the labels that some VirtualService's
//!   `sourceLabels` names and the Sidecar in force (which hosts it reaches, see `scope`).
//!   Other labels cannot change a route, so they are not in the key;
//! - clusters and endpoints: those of the hosts the proxy's scope reaches, picked by name
//!   from the shared maps once per scope class;
//! - a sidecar's outbound listeners read what local mode's listener reads except the
//!   listener address; its clusters add to its scope's the inbound ones, which read only the
//!   list of ports the pod serves ([`sidecar::inbound::inbound_ports`]), not the pod's IP, so
//!   replicas of a workload share them, and its inbound listener reads those ports and what
//!   tracing reads. A sidecar's listener map is the union of two shared parts, kept per pair
//!   of classes.
//!
//! The caches live in the snapshot, so a new configuration starts empty and the old entries go
//! with the old snapshot once no session holds it. Work for a class happens at most once even
//! when many sessions of the class ask at the same moment: the later ones wait for the first.

use super::sidecar::{self, inbound::InboundPort};
use super::{endpoints, listeners, routes, MeshSnapshot};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use xds_protos::node::{NodeIdentity, ProxyMode};
use xds_protos::snapshot::{NamedResources, Resources, VersionedResource};
use xds_protos::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE};

/// What the route configuration of a proxy depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteClass {
    /// Local mode's one `http_proxy` configuration, or a sidecar's per-port ones.
    pub mode: ProxyMode,
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
    /// Sidecars' `virtualInbound` listeners.
    pub inbound: u64,
}

struct NodeIndependent {
    clusters: Arc<NamedResources>,
    endpoints: Arc<NamedResources>,
}

type Slot = Arc<OnceLock<Arc<NamedResources>>>;

/// What a sidecar's `virtualInbound` is translated from: the ports the pod serves, and the
/// part of the proxy that tracing reads (see [`MeshSnapshot::tracing_class`]). Its clusters
/// depend on the ports only.
type InboundClass = (Vec<InboundPort>, NodeIdentity);

/// What a proxy's listeners are translated from: the part of the proxy they read (see
/// [`MeshSnapshot::listener_class`]) and, for a sidecar whose scope hides part of the mesh,
/// that scope (its port listeners are those of the hosts it reaches, as istiod builds them).
type ListenerClass = (NodeIdentity, Option<super::scope::ScopeClass>);

/// The per-snapshot caches.
#[derive(Default)]
pub(super) struct TranslationCache {
    node_independent: OnceLock<NodeIndependent>,
    listeners: Mutex<HashMap<ListenerClass, Slot>>,
    routes: Mutex<HashMap<RouteClass, Slot>>,
    inbound_listener: Mutex<HashMap<InboundClass, Slot>>,
    /// Every cluster of the sidecars serving these ports in one scope: the scope's, the passthrough
    /// ones and their `inbound|PORT||`.
    sidecar_clusters: Mutex<HashMap<(Vec<InboundPort>, super::scope::ScopeClass), Slot>>,
    /// A sidecar's outbound listeners joined with its inbound one, per pair of classes.
    sidecar_listeners: Mutex<HashMap<(ListenerClass, InboundClass), Slot>>,
    /// Every label key a `sourceLabels` match names.
    source_label_keys: BTreeSet<String>,
    counts: Counts,
}

#[derive(Default)]
struct Counts {
    node_independent: AtomicU64,
    listeners: AtomicU64,
    routes: AtomicU64,
    inbound: AtomicU64,
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
        out.set_type(ENDPOINT, scoped.endpoints.clone());
        out.set_type(ROUTE, self.routes_of(node));
        if node.mode == ProxyMode::Sidecar {
            let ports = sidecar::inbound::inbound_ports(self, &node.instance_ip());
            let scope = self.scope_class(node);
            out.set_type(
                CLUSTER,
                self.sidecar_clusters_of(&ports, scope, &scoped.clusters),
            );
            let class = (ports, self.tracing_class(node));
            out.set_type(LISTENER, self.sidecar_listeners_of(node, class));
        } else {
            out.set_type(CLUSTER, scoped.clusters.clone());
            out.set_type(LISTENER, self.listeners_of(node));
        }
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
            inbound: c.inbound.load(Ordering::Relaxed),
        }
    }

    /// The class whose route configuration `node` gets.
    pub fn route_class(&self, node: &NodeIdentity) -> RouteClass {
        RouteClass {
            mode: node.mode,
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
        let class = self.listener_class(node);
        let slot = slot(&self.cache.listeners, class.clone());
        slot.get_or_init(|| {
            self.cache.counts.listeners.fetch_add(1, Ordering::Relaxed);
            let (representative, scope) = class;
            let scoped = scope.map(|c| self.scoped_of(c));
            let view = scoped
                .as_ref()
                .and_then(|s| s.scope.view.as_ref())
                .unwrap_or(self);
            let mut out = NamedResources::new();
            let translated = match representative.mode {
                ProxyMode::Local => listeners::listeners(self, &representative),
                ProxyMode::Sidecar => sidecar::outbound::listeners(view, &representative),
            };
            for l in translated {
                let any = xds_protos::any::pack(LISTENER, &l);
                out.insert(l.name, Arc::new(VersionedResource::new(any)));
            }
            Arc::new(out)
        })
        .clone()
    }

    /// The part of `node` its listeners (a sidecar's outbound ones) are translated from.
    fn listener_class(&self, node: &NodeIdentity) -> ListenerClass {
        let representative = NodeIdentity {
            // A sidecar's listeners are at the capture ports, wherever it says it listens.
            outbound_addr: match node.mode {
                ProxyMode::Local => node.outbound_addr.clone(),
                ProxyMode::Sidecar => None,
            },
            mode: node.mode,
            ..self.tracing_class(node)
        };
        // Most sidecars see the whole mesh: their listeners stay shared across namespaces.
        let scope = match node.mode {
            ProxyMode::Sidecar => Some(self.scope_class(node))
                .filter(|class| self.scoped_of(class.clone()).scope.view.is_some()),
            ProxyMode::Local => None,
        };
        (representative, scope)
    }

    /// The part of `node` its connection managers' tracing and access logs read: nothing
    /// unless the mesh config has a tracing provider or some Telemetry sets `accessLogging`.
    fn tracing_class(&self, node: &NodeIdentity) -> NodeIdentity {
        let mut class = NodeIdentity::default();
        let mut keys: BTreeSet<&str> = BTreeSet::new();
        let mc = &self.options.mesh_config;
        if mc.enable_tracing && !mc.tracing_providers.is_empty() {
            keys.extend(super::tracing::label_keys(self));
            class.namespace = node.namespace.clone();
            class.workload = node.workload.clone();
        }
        if super::access_log::reads_proxy(self) {
            keys.extend(super::access_log::label_keys(self));
            class.namespace = node.namespace.clone();
        }
        class.labels = node
            .labels
            .iter()
            .filter(|(k, _)| keys.contains(k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
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
                mode: class.mode,
                namespace: class.namespace,
                labels: class.labels,
                ..Default::default()
            };
            let configs = match class.mode {
                ProxyMode::Local => vec![routes::http_proxy_routes(view, &representative)],
                ProxyMode::Sidecar => sidecar::routes::route_configs(view, &representative),
            };
            let mut out = NamedResources::new();
            for rc in configs {
                let any = xds_protos::any::pack(ROUTE, &rc);
                out.insert(rc.name, Arc::new(VersionedResource::new(any)));
            }
            Arc::new(out)
        })
        .clone()
    }
}

impl MeshSnapshot {
    /// The `virtualInbound` of the sidecars of `class`.
    fn inbound_listener_of(&self, class: &InboundClass) -> Arc<NamedResources> {
        let slot = slot(&self.cache.inbound_listener, class.clone());
        slot.get_or_init(|| {
            self.cache.counts.inbound.fetch_add(1, Ordering::Relaxed);
            let (ports, tracing) = class;
            let l = sidecar::inbound::listener(self, tracing, ports);
            let any = xds_protos::any::pack(LISTENER, &l);
            Arc::new(NamedResources::from([(
                l.name,
                Arc::new(VersionedResource::new(any)),
            )]))
        })
        .clone()
    }

    /// Every cluster of the sidecars serving `ports`.
    fn sidecar_clusters_of(
        &self,
        ports: &[InboundPort],
        scope: super::scope::ScopeClass,
        scoped: &Arc<NamedResources>,
    ) -> Arc<NamedResources> {
        let slot = slot(&self.cache.sidecar_clusters, (ports.to_vec(), scope));
        slot.get_or_init(|| {
            let mut clusters = (**scoped).clone();
            let own = sidecar::passthrough::clusters()
                .into_iter()
                .chain(sidecar::inbound::clusters(ports));
            for c in own {
                let any = xds_protos::any::pack(CLUSTER, &c);
                clusters.insert(c.name, Arc::new(VersionedResource::new(any)));
            }
            Arc::new(clusters)
        })
        .clone()
    }

    /// A sidecar's listeners: its class's outbound ones and its inbound one, joined once per
    /// pair of classes.
    fn sidecar_listeners_of(
        &self,
        node: &NodeIdentity,
        class: InboundClass,
    ) -> Arc<NamedResources> {
        let inbound = self.inbound_listener_of(&class);
        let slot = slot(
            &self.cache.sidecar_listeners,
            (self.listener_class(node), class),
        );
        slot.get_or_init(|| {
            let mut all = (*self.listeners_of(node)).clone();
            all.extend(inbound.iter().map(|(k, v)| (k.clone(), v.clone())));
            Arc::new(all)
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

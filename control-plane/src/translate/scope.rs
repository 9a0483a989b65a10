//! Only what a proxy may reach: Istio's `Sidecar` egress hosts and `exportTo`.
//!
//! A proxy's scope depends on two things only: its namespace (what is exported to it) and the
//! Sidecar that applies to it (see `model::sidecar`). That pair, [`ScopeClass`], is part of
//! the class keys of the per-proxy caches, so proxies of one class still share one
//! translation.
//!
//! Within a scope:
//! - a service (a ServiceEntry host) is reachable when its ServiceEntry is exported to the
//!   proxy's namespace and, under a Sidecar with egress hosts, an egress host covers it, or a
//!   selected VirtualService routes to it (as istiod adds the destinations of the
//!   VirtualServices a Sidecar selects);
//! - a VirtualService applies when it is exported and an egress host covers one of its hosts;
//! - a DestinationRule applies when it is exported.
//!
//! What the proxy is sent is translated from a *view*: the mesh without what does not apply,
//! and with the reachable services only. Clusters and endpoints stay translated once for the
//! whole mesh: when the view hides no ServiceEntry or DestinationRule, a proxy's clusters and
//! endpoints are exactly those of its reachable hosts in the shared maps, so its maps are
//! made of the shared resources, picked by name. Only a view that hides one of those (which
//! changes what a cluster is) translates its own.

use super::MeshSnapshot;
use crate::model::sidecar::{exported_to, EgressHost};
use crate::model::{ConfigSet, DestinationRule, Resource, ServiceEntry, Sidecar, VirtualService};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use xds_protos::node::NodeIdentity;
use xds_protos::snapshot::NamedResources;

/// What decides which hosts a proxy may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopeClass {
    pub namespace: String,
    /// The Sidecar in force, `(namespace, name)`.
    pub sidecar: Option<(String, String)>,
}

impl ScopeClass {
    pub fn of(config: &ConfigSet, root_namespace: &str, node: &NodeIdentity) -> ScopeClass {
        let sidecar = config
            .sidecar_for(&node.namespace, &node.labels, root_namespace)
            .map(|r| (r.meta.namespace.clone(), r.meta.name.clone()));
        ScopeClass {
            namespace: node.namespace.clone(),
            sidecar,
        }
    }
}

/// The scope of one class.
pub(super) struct Scope {
    /// The mesh as the class sees it; `None` when that is the whole mesh.
    pub view: Option<MeshSnapshot>,
    /// Whether the view hides a ServiceEntry or a DestinationRule (then its clusters are not
    /// those of the shared maps).
    pub own_clusters: bool,
    /// The hosts the class may reach; `None`: every host.
    pub reachable: Option<BTreeSet<String>>,
}

impl Scope {
    pub fn of(mesh: &MeshSnapshot, class: &ScopeClass) -> Scope {
        let config = &mesh.config;
        let sidecar: Option<&Resource<Sidecar>> = class.sidecar.as_ref().and_then(|(ns, name)| {
            config
                .sidecars
                .iter()
                .find(|s| &s.meta.namespace == ns && &s.meta.name == name)
                .map(|s| &**s)
        });
        let egress = sidecar.and_then(Egress::of);
        let ns = class.namespace.as_str();
        let covers =
            |res_ns: &str, host: &str| egress.as_ref().is_none_or(|e| e.covers(res_ns, host));

        let se_visible = |se: &Arc<Resource<ServiceEntry>>| {
            exported_to(&se.spec.export_to, &se.meta.namespace, ns)
        };
        let dr_visible = |dr: &Arc<Resource<DestinationRule>>| {
            exported_to(&dr.spec.export_to, &dr.meta.namespace, ns)
        };
        let vs_applies = |vs: &Arc<Resource<VirtualService>>| {
            exported_to(&vs.spec.export_to, &vs.meta.namespace, ns)
                && vs.spec.hosts.iter().any(|h| covers(&vs.meta.namespace, h))
        };
        // Most classes see the whole mesh: decided without copying the configuration.
        let own_clusters = !config.service_entries.iter().all(se_visible)
            || !config.destination_rules.iter().all(dr_visible);
        let hides_config = own_clusters || !config.virtual_services.iter().all(vs_applies);
        if egress.is_none() && !hides_config {
            return Scope {
                view: None,
                own_clusters: false,
                reachable: None,
            };
        }
        let mut view = config.clone();
        view.service_entries.retain(se_visible);
        view.destination_rules.retain(dr_visible);
        view.virtual_services.retain(vs_applies);

        let mut snapshot = MeshSnapshot::new(view, mesh.options.clone());
        let mut reachable: BTreeSet<String> = snapshot
            .registry
            .services
            .iter()
            .filter(|s| covers(&s.namespace, &s.hostname))
            .map(|s| s.hostname.clone())
            .collect();
        for vs in &snapshot.config.virtual_services {
            for host in destinations(&vs.spec) {
                if snapshot.registry.service(host).is_some() {
                    reachable.insert(host.to_string());
                }
            }
        }
        snapshot
            .registry
            .services
            .retain(|s| reachable.contains(&s.hostname));
        Scope {
            view: Some(snapshot),
            own_clusters,
            reachable: Some(reachable),
        }
    }

    /// The resources of `shared` (clusters or endpoints, by cluster name) this scope reaches:
    /// `shared` itself when it reaches everything. Resources that belong to no service (the
    /// tracing collectors) are always kept.
    pub fn pick(&self, shared: &Arc<NamedResources>) -> Arc<NamedResources> {
        let Some(reachable) = &self.reachable else {
            return shared.clone();
        };
        let picked: NamedResources = shared
            .iter()
            .filter(|(name, _)| service_of(name).is_none_or(|host| reachable.contains(host)))
            .map(|(name, r)| (name.clone(), r.clone()))
            .collect();
        if picked.len() == shared.len() {
            return shared.clone();
        }
        Arc::new(picked)
    }
}

/// The egress hosts of a Sidecar, `None` when it has none (no restriction).
struct Egress {
    sidecar_namespace: String,
    hosts: Vec<EgressHost>,
}

impl Egress {
    fn of(sidecar: &Resource<Sidecar>) -> Option<Egress> {
        if sidecar.spec.egress.is_empty() {
            return None;
        }
        // Validation refused the Sidecar if a host does not parse.
        let hosts = sidecar
            .spec
            .egress
            .iter()
            .flat_map(|e| e.hosts.iter())
            .filter_map(|h| EgressHost::parse(h).ok())
            .collect();
        Some(Egress {
            sidecar_namespace: sidecar.meta.namespace.clone(),
            hosts,
        })
    }

    fn covers(&self, host_namespace: &str, host: &str) -> bool {
        self.hosts
            .iter()
            .any(|h| h.covers(&self.sidecar_namespace, host_namespace, host))
    }
}

/// Every host a VirtualService sends traffic to (routes and mirrors).
fn destinations(vs: &VirtualService) -> impl Iterator<Item = &str> {
    vs.http
        .iter()
        .flat_map(|h| {
            h.route
                .iter()
                .map(|r| &r.destination)
                .chain(h.mirror.iter())
                .chain(h.mirrors.iter().map(|m| &m.destination))
        })
        .chain(
            vs.tcp
                .iter()
                .flat_map(|t| t.route.iter().map(|r| &r.destination)),
        )
        .chain(
            vs.tls
                .iter()
                .flat_map(|t| t.route.iter().map(|r| &r.destination)),
        )
        .map(|d| d.host.as_str())
}

/// The service host of a cluster (or load assignment) named `outbound|port|subset|host`.
fn service_of(cluster: &str) -> Option<&str> {
    let rest = cluster.strip_prefix("outbound|")?;
    let mut parts = rest.splitn(3, '|');
    let (_, _, host) = (parts.next()?, parts.next()?, parts.next()?);
    Some(host)
}

/// The scopes of a snapshot, one per class, with the clusters and endpoints each reaches.
#[derive(Default)]
pub(super) struct ScopeCache {
    classes: Mutex<HashMap<ScopeClass, Arc<OnceLock<Arc<Scoped>>>>>,
}

/// A class's scope and what it is sent of the node-independent resources.
pub(super) struct Scoped {
    pub scope: Scope,
    pub clusters: Arc<NamedResources>,
    pub endpoints: Arc<NamedResources>,
}

impl MeshSnapshot {
    /// The scope class of `node`.
    pub fn scope_class(&self, node: &NodeIdentity) -> ScopeClass {
        ScopeClass::of(&self.config, &self.options.mesh_config.root_namespace, node)
    }

    /// The scope of `class`, made once per snapshot. `shared` is the snapshot's clusters and
    /// endpoints, which a scope that hides no ServiceEntry or DestinationRule picks from;
    /// `own` translates those of a view that hides one.
    pub(super) fn scoped(
        &self,
        class: &ScopeClass,
        shared: (&Arc<NamedResources>, &Arc<NamedResources>),
        own: impl FnOnce(&MeshSnapshot) -> (Arc<NamedResources>, Arc<NamedResources>),
    ) -> Arc<Scoped> {
        let slot = {
            let mut guard = match self.scopes.classes.lock() {
                Ok(g) => g,
                // A panic while holding this lock cannot leave the map inconsistent.
                Err(poisoned) => poisoned.into_inner(),
            };
            guard.entry(class.clone()).or_default().clone()
        };
        slot.get_or_init(|| {
            let scope = Scope::of(self, class);
            let (clusters, endpoints) = match &scope.view {
                Some(view) if scope.own_clusters => own(view),
                _ => (scope.pick(shared.0), scope.pick(shared.1)),
            };
            Arc::new(Scoped {
                scope,
                clusters,
                endpoints,
            })
        })
        .clone()
    }
}

/// The view `node`'s resources are translated from, with its scope (translated afresh; the
/// sessions use the cached scopes of `shared`).
pub(super) fn scope_of(mesh: &MeshSnapshot, node: &NodeIdentity) -> Scope {
    let class = ScopeClass::of(&mesh.config, &mesh.options.mesh_config.root_namespace, node);
    Scope::of(mesh, &class)
}

#[cfg(test)]
mod tests;

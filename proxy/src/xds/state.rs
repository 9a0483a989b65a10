//! The xDS cache: every accepted resource, compiled, and the snapshot built from them.
//!
//! An update is decoded and compiled resource by resource, off to the side. Good resources are
//! applied; each bad one is rejected with a reason naming the resource and the field, and its
//! last good version stays. The reasons are joined into the NACK's `error_detail`. Nothing
//! half-applied ever reaches the request path: a new [`Snapshot`] is built from the whole
//! cache and published in one step.

use crate::config::{self, ClusterConfig, Discovery, Endpoint, ListenerConfig, RouteSource};
use crate::router::RouteTable;
use crate::snapshot::Snapshot;
use crate::upstream::Cluster;
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use xds_protos::pb::envoy::config::cluster::v3::Cluster as ClusterProto;
use xds_protos::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use xds_protos::pb::envoy::config::listener::v3::Listener;
use xds_protos::pb::envoy::config::route::v3::RouteConfiguration;
use xds_protos::pb::google::protobuf::Any;
use xds_protos::type_url;

/// A resource as received and as compiled.
pub struct Entry<P, C> {
    pub proto: P,
    pub compiled: Arc<C>,
}

#[derive(Default)]
pub struct XdsCache {
    pub listeners: BTreeMap<String, Entry<Listener, ListenerConfig>>,
    pub routes: BTreeMap<String, Entry<RouteConfiguration, RouteTable>>,
    pub clusters: BTreeMap<String, Entry<ClusterProto, ClusterConfig>>,
    pub endpoints: BTreeMap<String, Entry<ClusterLoadAssignment, Vec<Endpoint>>>,
    pub versions: BTreeMap<String, String>,
    /// Types that have had at least one response.
    received: BTreeSet<String>,
}

/// The outcome of applying one response: the reasons for every rejected resource.
#[derive(Debug, Default)]
pub struct Applied {
    pub rejected: Vec<String>,
}

impl Applied {
    pub fn error_detail(&self) -> Option<String> {
        (!self.rejected.is_empty()).then(|| self.rejected.join("; "))
    }
}

impl XdsCache {
    /// Applies a state-of-the-world response. For listeners and clusters the response is the
    /// whole set, so what it lacks is removed; routes and endpoints are sent by name, and the
    /// ones no longer wanted are pruned by [`XdsCache::prune`].
    pub fn apply(&mut self, type_url_: &str, version: &str, resources: &[Any]) -> Applied {
        let mut applied = Applied::default();
        match type_url_ {
            type_url::LISTENER => {
                let next = apply_set(
                    &self.listeners,
                    resources,
                    type_url_,
                    &mut applied,
                    |l: &Listener| l.name.clone(),
                    |l| config::compile_listener(l).map_err(|e| e.to_string()),
                );
                self.listeners = next;
            }
            type_url::CLUSTER => {
                let next = apply_set(
                    &self.clusters,
                    resources,
                    type_url_,
                    &mut applied,
                    |c: &ClusterProto| c.name.clone(),
                    |c| config::compile_cluster(c).map_err(|e| e.to_string()),
                );
                self.clusters = next;
            }
            type_url::ROUTE => {
                let next = apply_set(
                    &self.routes,
                    resources,
                    type_url_,
                    &mut applied,
                    |r: &RouteConfiguration| r.name.clone(),
                    |r| config::compile_route_config(r).map_err(|e| e.to_string()),
                );
                self.routes.extend(next);
            }
            type_url::ENDPOINT => {
                let next = apply_set(
                    &self.endpoints,
                    resources,
                    type_url_,
                    &mut applied,
                    |c: &ClusterLoadAssignment| c.cluster_name.clone(),
                    |c| config::compile_load_assignment(c, false).map_err(|e| e.to_string()),
                );
                self.endpoints.extend(next);
            }
            other => applied.rejected.push(format!("unsupported type {other}")),
        }
        self.received.insert(type_url_.to_string());
        if applied.rejected.is_empty() {
            self.versions
                .insert(type_url_.to_string(), version.to_string());
        }
        applied
    }

    /// Route configurations the listeners ask for.
    pub fn wanted_routes(&self) -> BTreeSet<String> {
        self.listeners
            .values()
            .filter_map(|l| match &l.compiled.route_source {
                RouteSource::Rds(name) => Some(name.clone()),
                RouteSource::Inline(_) => None,
            })
            .collect()
    }

    /// Endpoint assignments the EDS clusters ask for.
    pub fn wanted_endpoints(&self) -> BTreeSet<String> {
        self.clusters
            .values()
            .filter(|c| matches!(c.compiled.discovery, Discovery::Eds))
            .map(|c| c.compiled.eds_service_name.clone())
            .collect()
    }

    /// Drops routes and endpoints nobody refers to any more.
    pub fn prune(&mut self) {
        let routes = self.wanted_routes();
        self.routes.retain(|name, _| routes.contains(name));
        let endpoints = self.wanted_endpoints();
        self.endpoints.retain(|name, _| endpoints.contains(name));
    }

    /// Whether the first full configuration has arrived: listeners and clusters, and every
    /// route configuration and endpoint assignment they refer to.
    pub fn is_complete(&self) -> bool {
        self.received.contains(type_url::LISTENER)
            && self.received.contains(type_url::CLUSTER)
            && self
                .wanted_routes()
                .iter()
                .all(|r| self.routes.contains_key(r))
            && self
                .wanted_endpoints()
                .iter()
                .all(|e| self.endpoints.contains_key(e))
    }

    /// Builds the snapshot the request path will read, carrying over runtime state (pools,
    /// balancer positions, counters) from `previous`.
    pub fn build_snapshot(&self, previous: &Snapshot) -> Snapshot {
        let no_endpoints = Vec::new();
        let clusters = self
            .clusters
            .iter()
            .map(|(name, entry)| {
                let cfg = &entry.compiled;
                let endpoints = match cfg.discovery {
                    Discovery::Eds => self
                        .endpoints
                        .get(&cfg.eds_service_name)
                        .map_or(&no_endpoints, |e| &*e.compiled),
                    _ => &cfg.static_endpoints,
                };
                let prev = previous.clusters.get(name.as_str()).map(|c| &**c);
                let cluster = Cluster::build(cfg.clone(), endpoints, prev);
                (cluster.name.clone(), Arc::new(cluster))
            })
            .collect();
        Snapshot {
            listeners: self
                .listeners
                .iter()
                .map(|(n, e)| (n.clone(), e.compiled.clone()))
                .collect(),
            routes: self
                .routes
                .iter()
                .map(|(n, e)| (n.clone(), e.compiled.clone()))
                .collect(),
            clusters,
            versions: self.versions.clone(),
            complete: self.is_complete(),
        }
    }
}

/// Decodes and compiles every resource of a response. A resource that fails keeps its
/// previous entry (if any) in the result; the failure is recorded.
fn apply_set<P, C>(
    current: &BTreeMap<String, Entry<P, C>>,
    resources: &[Any],
    type_url_: &str,
    applied: &mut Applied,
    name_of: impl Fn(&P) -> String,
    compile: impl Fn(&P) -> Result<C, String>,
) -> BTreeMap<String, Entry<P, C>>
where
    P: Message + Default + Clone + PartialEq,
{
    let mut next = BTreeMap::new();
    for (i, any) in resources.iter().enumerate() {
        if any.type_url != type_url_ {
            applied.rejected.push(format!(
                "resources[{i}]: expected {type_url_}, got {}",
                any.type_url
            ));
            continue;
        }
        let proto = match P::decode(any.value.as_slice()) {
            Ok(p) => p,
            Err(e) => {
                applied
                    .rejected
                    .push(format!("resources[{i}]: cannot decode: {e}"));
                continue;
            }
        };
        // Unchanged resources keep their compiled form (and its identity), skipping the work.
        let name = name_of(&proto);
        let compiled = match current.get(&name) {
            Some(e) if e.proto == proto => Ok(e.compiled.clone()),
            _ => compile(&proto).map(Arc::new),
        };
        match compiled {
            Ok(compiled) => {
                next.insert(name, Entry { proto, compiled });
            }
            Err(reason) => {
                applied.rejected.push(reason);
                if let Some(old) = current.get(&name) {
                    next.insert(
                        name,
                        Entry {
                            proto: old.proto.clone(),
                            compiled: old.compiled.clone(),
                        },
                    );
                }
            }
        }
    }
    next
}

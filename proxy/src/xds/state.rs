//! The xDS cache: every accepted resource, compiled, and the snapshot built from them.
//!
//! A response is applied as one transaction: every resource in it is checked (type URL, a
//! decodable body, a name, no name twice) and compiled off to the side, and only when all of
//! them pass does the new set replace the old. If any fails, the cache is left exactly as it
//! was (every resource keeps its last good version, including ones the response would have
//! removed) and the reasons, each naming the resource and the field, go into the NACK's
//! `error_detail`. Nothing half-applied ever reaches the request path: a new [`Snapshot`] is
//! built from the whole cache and published in one step.
//!
//! Why all-or-nothing rather than per resource: in a state-of-the-world response the set is
//! the message. A listener that fails to decode has no name, so a per-resource update cannot
//! tell which old listener it was meant to replace and would remove it as "absent"; and a
//! half-applied set can pair a new listener with routes or clusters the rest of the response
//! was meant to change alongside it.

pub use super::resource::Entry;
use super::resource::{Clusters, Endpoints, Entries, Listeners, ResourceType, Routes};
use crate::config::{ClusterConfig, Discovery, Endpoint, ListenerConfig, RouteSource};
use crate::router::RouteTable;
use crate::snapshot::Snapshot;
use crate::upstream::Cluster;
use prost::Message;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use xds_protos::pb::envoy::config::cluster::v3::Cluster as ClusterProto;
use xds_protos::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use xds_protos::pb::envoy::config::listener::v3::Listener;
use xds_protos::pb::envoy::config::route::v3::RouteConfiguration;
use xds_protos::pb::google::protobuf::Any;
use xds_protos::type_url;

#[derive(Default)]
pub struct XdsCache {
    pub listeners: BTreeMap<String, Entry<Listener, ListenerConfig>>,
    pub routes: BTreeMap<String, Entry<RouteConfiguration, RouteTable>>,
    pub clusters: BTreeMap<String, Entry<ClusterProto, ClusterConfig>>,
    pub endpoints: BTreeMap<String, Entry<ClusterLoadAssignment, Vec<Endpoint>>>,
    pub versions: BTreeMap<String, String>,
    /// Types that have had at least one accepted response.
    received: BTreeSet<String>,
}

/// The outcome of applying one response: the reasons for every rejected resource. When there
/// is any, nothing was applied.
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
    /// Applies a state-of-the-world response of any supported type, all or nothing.
    pub fn apply(&mut self, type_url_: &str, version: &str, resources: &[Any]) -> Applied {
        match type_url_ {
            type_url::LISTENER => self.apply_typed::<Listeners>(version, resources),
            type_url::ROUTE => self.apply_typed::<Routes>(version, resources),
            type_url::CLUSTER => self.apply_typed::<Clusters>(version, resources),
            type_url::ENDPOINT => self.apply_typed::<Endpoints>(version, resources),
            other => Applied {
                rejected: vec![format!("unsupported type {other}")],
            },
        }
    }

    /// Applies a response of type `T`: for a whole-set type the response replaces the set;
    /// otherwise its resources are added or replaced, and the ones no longer wanted are pruned
    /// by [`XdsCache::prune`].
    pub fn apply_typed<T: Stored>(&mut self, version: &str, resources: &[Any]) -> Applied {
        let next = match decode_all::<T>(T::entries(self), resources) {
            Ok(next) => next,
            Err(rejected) => return Applied { rejected },
        };
        let entries = T::entries_mut(self);
        if T::WHOLE_SET {
            *entries = next;
        } else {
            entries.extend(next);
        }
        self.received.insert(T::TYPE_URL.to_string());
        self.versions
            .insert(T::TYPE_URL.to_string(), version.to_string());
        Applied::default()
    }

    /// Route configurations the listeners ask for.
    pub fn wanted_routes(&self) -> BTreeSet<String> {
        self.listeners
            .values()
            .flat_map(|l| l.compiled.http_connection_managers())
            .filter_map(|h| match &h.route_source {
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
        let listeners = self
            .listeners
            .iter()
            .map(|(n, e)| (n.clone(), e.compiled.clone()))
            .collect();
        Snapshot {
            listeners_by_address: Snapshot::index_by_address(&listeners),
            listeners,
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

/// Where the cache keeps each resource type's entries.
pub trait Stored: ResourceType {
    fn entries(cache: &XdsCache) -> &Entries<Self>;
    fn entries_mut(cache: &mut XdsCache) -> &mut Entries<Self>;
}

macro_rules! stored {
    ($t:ty, $field:ident) => {
        impl Stored for $t {
            fn entries(cache: &XdsCache) -> &Entries<Self> {
                &cache.$field
            }
            fn entries_mut(cache: &mut XdsCache) -> &mut Entries<Self> {
                &mut cache.$field
            }
        }
    };
}
stored!(Listeners, listeners);
stored!(Routes, routes);
stored!(Clusters, clusters);
stored!(Endpoints, endpoints);

/// Decodes, checks and compiles every resource of a response into the entries it would
/// install, or returns the reason for every resource that fails (all of them, so one NACK
/// tells the operator everything that is wrong).
fn decode_all<T: Stored>(
    current: &Entries<T>,
    resources: &[Any],
) -> Result<Entries<T>, Vec<String>> {
    let mut next = BTreeMap::new();
    let mut rejected = Vec::new();
    // Where each name was first seen, to name both places when one repeats.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, any) in resources.iter().enumerate() {
        if any.type_url != T::TYPE_URL {
            rejected.push(format!(
                "resources[{i}]: type_url: expected {}, got {}",
                T::TYPE_URL,
                any.type_url
            ));
            continue;
        }
        let proto = match T::Proto::decode(any.value.as_slice()) {
            Ok(p) => p,
            Err(e) => {
                rejected.push(format!("resources[{i}]: cannot decode: {e}"));
                continue;
            }
        };
        let name = T::name(&proto);
        if name.is_empty() {
            rejected.push(format!("resources[{i}]: name: must not be empty"));
            continue;
        }
        if let Some(first) = seen.get(&name) {
            rejected.push(format!(
                "resources[{i}]: name: {name:?} repeats resources[{first}]"
            ));
            continue;
        }
        seen.insert(name.clone(), i);
        // Unchanged resources keep their compiled form (and its identity), skipping the work.
        let compiled = match current.get(&name) {
            Some(e) if e.proto == proto => Ok(e.compiled.clone()),
            _ => T::compile(&proto).map(Arc::new),
        };
        match compiled {
            Ok(compiled) => {
                next.insert(name, Entry { proto, compiled });
            }
            Err(reason) => rejected.push(reason),
        }
    }
    if rejected.is_empty() {
        Ok(next)
    } else {
        Err(rejected)
    }
}

#[cfg(test)]
mod tests;

//! The xDS cache: every accepted resource, compiled, and the snapshot built from them.
//!
//! A response is applied resource by resource, as Envoy applies LDS and CDS: every resource is
//! checked (type URL, a decodable body, a name, no name twice) and compiled off to the side;
//! the good ones replace their previous versions, and a refused one keeps its last good version
//! while the reasons, each naming the resource and the field, go into the NACK's
//! `error_detail`. So one listener weft-proxy cannot serve never holds back the others.
//!
//! Nothing is lost to a bad response: in a state-of-the-world response, a resource that is
//! absent is removed — unless some resource in it could not be read far enough to know its
//! name (undecodable, another type, no name), because that one may be the absent resource, so
//! then nothing is removed. A delta response names what it removes, and each of its resources
//! carries its own name, so there a refused resource never puts another at risk. The version
//! the proxy reports stays the last one it accepted whole.
//! A new [`Snapshot`] is built from the whole cache and published in one step.

pub use super::resource::Entry;
use super::resource::{Clusters, Endpoints, Entries, Listeners, ResourceType, Routes};
use crate::config::{ClusterConfig, Discovery, Endpoint, ListenerConfig, RouteSource};
use crate::router::RouteTable;
use crate::snapshot::Snapshot;
use crate::upstream::Cluster;
use prost::Message;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use xds_protos::pb::google::protobuf::Any;
use xds_protos::type_url;
use xds_protos::Resource;

#[derive(Default)]
pub struct XdsCache {
    pub listeners: BTreeMap<String, Entry<ListenerConfig>>,
    pub routes: BTreeMap<String, Entry<RouteTable>>,
    pub clusters: BTreeMap<String, Entry<ClusterConfig>>,
    pub endpoints: BTreeMap<String, Entry<Vec<Endpoint>>>,
    pub versions: BTreeMap<String, String>,
    /// Types that have had at least one accepted response.
    received: BTreeSet<String>,
}

/// The outcome of applying one response: the reasons for every rejected resource, and whether
/// anything in the cache changed.
#[derive(Debug, Default)]
pub struct Applied {
    pub rejected: Vec<String>,
    pub changed: bool,
}

impl Applied {
    pub fn error_detail(&self) -> Option<String> {
        (!self.rejected.is_empty()).then(|| self.rejected.join("; "))
    }
}

/// Evaluates `$body` with `$T` naming the resource type of `$url`, or `$other` for a type URL
/// the proxy does not consume: the one place the four types are told apart by URL.
macro_rules! by_type {
    ($url:expr, $T:ident => $body:expr, _ => $other:expr) => {
        match $url {
            type_url::LISTENER => {
                type $T = Listeners;
                $body
            }
            type_url::ROUTE => {
                type $T = Routes;
                $body
            }
            type_url::CLUSTER => {
                type $T = Clusters;
                $body
            }
            type_url::ENDPOINT => {
                type $T = Endpoints;
                $body
            }
            _ => $other,
        }
    };
}

impl XdsCache {
    /// Applies a state-of-the-world response of any supported type, as `apply_typed` says.
    pub fn apply(&mut self, type_url_: &str, version: &str, resources: &[Any]) -> Applied {
        by_type!(type_url_, T => self.apply_typed::<T>(version, resources), _ => unsupported(type_url_))
    }

    /// Applies a delta response of any supported type, as `apply_delta_typed` says.
    pub fn apply_delta(
        &mut self,
        type_url_: &str,
        system_version: &str,
        resources: &[Resource],
        removed: &[String],
    ) -> Applied {
        by_type!(
            type_url_,
            T => self.apply_delta_typed::<T>(system_version, resources, removed),
            _ => unsupported(type_url_)
        )
    }

    /// Applies a state-of-the-world response of type `T`: for a whole-set type the response
    /// replaces the set; otherwise its resources are added or replaced, and the ones no longer
    /// wanted are pruned by [`XdsCache::prune`].
    fn apply_typed<T: Stored>(&mut self, version: &str, resources: &[Any]) -> Applied {
        let incoming = resources.iter().map(|any| Incoming {
            body: Some(any),
            version,
            wrapper: None,
        });
        let decoded = decode_all::<T>(T::entries(self), incoming);
        let entries = T::entries_mut(self);
        let before = entries.len();
        if T::WHOLE_SET && !decoded.unnamed_failure {
            // Gone from the set: removed. A refused resource keeps its last good version.
            entries.retain(|name, _| {
                decoded.good.contains_key(name) || decoded.refused_names.contains(name)
            });
        }
        let removed = entries.len() != before;
        self.take::<T>(version, decoded, removed)
    }

    /// Applies a delta response of type `T`: its resources are added or replaced and the
    /// names it lists as removed are dropped, whatever the type. Each resource names itself
    /// in the response, so a refused one never puts another at risk.
    fn apply_delta_typed<T: Stored>(
        &mut self,
        system_version: &str,
        resources: &[Resource],
        removed: &[String],
    ) -> Applied {
        let incoming = resources.iter().map(|r| Incoming {
            body: r.resource.as_ref(),
            version: &r.version,
            wrapper: Some(r),
        });
        let decoded = decode_all::<T>(T::entries(self), incoming);
        let entries = T::entries_mut(self);
        let mut dropped = false;
        for name in removed {
            dropped |= entries.remove(name).is_some();
        }
        self.take::<T>(system_version, decoded, dropped)
    }

    /// Puts the good resources of a response in place of their previous versions; the type's
    /// version becomes `version` only when nothing was refused.
    fn take<T: Stored>(&mut self, version: &str, decoded: Decoded<T>, removed: bool) -> Applied {
        let entries = T::entries_mut(self);
        let mut changed = removed;
        for (name, entry) in decoded.good {
            let same = entries
                .get(&name)
                .is_some_and(|e| Arc::ptr_eq(&e.compiled, &entry.compiled));
            changed |= !same;
            entries.insert(name, entry);
        }
        let whole = decoded.rejected.is_empty();
        if whole || changed {
            self.received.insert(T::TYPE_URL.to_string());
        }
        if whole {
            self.versions
                .insert(T::TYPE_URL.to_string(), version.to_string());
        }
        Applied {
            rejected: decoded.rejected,
            changed: changed || whole,
        }
    }

    /// What the cache holds of type `T`, name -> version: a delta stream's
    /// `initial_resource_versions` when it reconnects.
    pub fn held_versions(&self, type_url_: &str) -> HashMap<String, String> {
        by_type!(
            type_url_,
            T => T::entries(self)
                .iter()
                .map(|(name, e)| (name.clone(), e.version.clone()))
                .collect(),
            _ => HashMap::new()
        )
    }

    /// Route configurations the listeners ask for.
    pub fn wanted_routes(&self) -> BTreeSet<String> {
        owned(route_names(&self.listeners))
    }

    /// Endpoint assignments the EDS clusters ask for.
    pub fn wanted_endpoints(&self) -> BTreeSet<String> {
        owned(endpoint_names(&self.clusters))
    }

    /// Drops routes and endpoints nobody refers to any more.
    pub fn prune(&mut self) {
        retain_sorted(&mut self.routes, &route_names(&self.listeners));
        retain_sorted(&mut self.endpoints, &endpoint_names(&self.clusters));
    }

    /// Whether the first full configuration has arrived: listeners and clusters, and every
    /// route configuration and endpoint assignment they refer to.
    pub fn is_complete(&self) -> bool {
        self.received.contains(type_url::LISTENER)
            && self.received.contains(type_url::CLUSTER)
            && sorted_subset(route_names(&self.listeners), self.routes.keys())
            && sorted_subset(endpoint_names(&self.clusters), self.endpoints.keys())
    }

    /// Builds the snapshot the request path will read, carrying over runtime state (pools,
    /// balancer positions, counters) from `previous`.
    pub fn build_snapshot(&self, previous: &Snapshot) -> Snapshot {
        let clusters = self
            .clusters
            .iter()
            .map(|(name, entry)| {
                let cfg = &entry.compiled;
                let assignment = match cfg.discovery {
                    Discovery::Eds => self
                        .endpoints
                        .get(&cfg.eds_service_name)
                        .map(|e| &e.compiled),
                    _ => None,
                };
                let prev = previous.clusters.get(name.as_str());
                let cluster = Cluster::for_snapshot(cfg, assignment, prev);
                (cluster.name.clone(), cluster)
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

fn unsupported(type_url_: &str) -> Applied {
    Applied {
        rejected: vec![format!("unsupported type {type_url_}")],
        changed: false,
    }
}

/// The route configurations `listeners` ask for.
fn route_names(listeners: &Entries<Listeners>) -> BTreeSet<&str> {
    listeners
        .values()
        .flat_map(|l| l.compiled.http_connection_managers())
        .filter_map(|h| match &h.route_source {
            RouteSource::Rds(name) => Some(name.as_str()),
            RouteSource::Inline(_) => None,
        })
        .collect()
}

/// The endpoint assignments the EDS clusters among `clusters` ask for.
fn endpoint_names(clusters: &Entries<Clusters>) -> BTreeSet<&str> {
    clusters
        .values()
        .filter(|c| matches!(c.compiled.discovery, Discovery::Eds))
        .map(|c| c.compiled.eds_service_name.as_str())
        .collect()
}

fn owned(names: BTreeSet<&str>) -> BTreeSet<String> {
    names.into_iter().map(str::to_string).collect()
}

/// Keeps the entries named in `wanted`, in one ordered walk of both (a lookup per entry was a
/// tenth of a sidecar's CPU for a change, with 3,000 endpoint assignments).
fn retain_sorted<V>(entries: &mut BTreeMap<String, V>, wanted: &BTreeSet<&str>) {
    let mut wanted = wanted.iter().peekable();
    // `retain` visits keys in ascending order, as `wanted` iterates.
    entries.retain(|name, _| {
        while wanted.next_if(|w| **w < name.as_str()).is_some() {}
        wanted.peek().is_some_and(|w| **w == name.as_str())
    });
}

/// Whether every name of `sub` is in `sup`, both ascending, in one walk.
fn sorted_subset<'a>(
    sub: impl IntoIterator<Item = &'a str>,
    sup: impl Iterator<Item = &'a String>,
) -> bool {
    let mut sup = sup.peekable();
    sub.into_iter().all(|name| {
        while sup.next_if(|s| s.as_str() < name).is_some() {}
        sup.peek().is_some_and(|s| s.as_str() == name)
    })
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

/// What a response holds, resource by resource.
struct Decoded<T: ResourceType> {
    /// The resources that passed, compiled.
    good: Entries<T>,
    /// The reason for every resource that did not (all of them, so one NACK tells the operator
    /// everything that is wrong).
    rejected: Vec<String>,
    /// Names of refused resources: they keep their last good version.
    refused_names: BTreeSet<String>,
    /// A resource was refused before its name was known.
    unnamed_failure: bool,
}

/// One resource of a response, as either protocol carries it.
struct Incoming<'a> {
    /// The resource (a delta resource without one is a TTL heartbeat).
    body: Option<&'a Any>,
    version: &'a str,
    /// Delta only: the wrapper, which names the resource and may ask for what weft-proxy does
    /// not do.
    wrapper: Option<&'a Resource>,
}

/// Decodes, checks and compiles every resource of a response.
fn decode_all<'a, T: Stored>(
    current: &Entries<T>,
    resources: impl Iterator<Item = Incoming<'a>>,
) -> Decoded<T> {
    let mut out = Decoded {
        good: BTreeMap::new(),
        rejected: Vec::new(),
        refused_names: BTreeSet::new(),
        unnamed_failure: false,
    };
    // Where each name was first seen, to name both places when one repeats.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, incoming) in resources.enumerate() {
        let declared = incoming.wrapper.map(|r| r.name.as_str());
        let refuse = |out: &mut Decoded<T>, reason: String| {
            out.rejected.push(format!("resources[{i}]: {reason}"));
            match declared {
                Some(name) => {
                    out.refused_names.insert(name.to_string());
                }
                None => out.unnamed_failure = true,
            }
        };
        let any = match checked::<T>(&incoming) {
            Ok(any) => any,
            Err(reason) => {
                refuse(&mut out, reason);
                continue;
            }
        };
        // Unchanged resources keep their compiled form (and its identity), skipping the work.
        // A delta resource names itself, so when its bytes are what is held under that name
        // it is not even decoded.
        let unchanged = |name: &str| {
            current
                .get(name)
                .filter(|e| e.encoded == any.value)
                .map(|e| e.compiled.clone())
        };
        let (name, compiled) = match declared.and_then(|d| Some((d, unchanged(d)?))) {
            Some((name, compiled)) => (name.to_string(), Ok(compiled)),
            None => {
                let proto = match T::Proto::decode(any.value.as_slice()) {
                    Ok(p) => p,
                    Err(e) => {
                        refuse(&mut out, format!("cannot decode: {e}"));
                        continue;
                    }
                };
                let name = T::name(&proto);
                if name.is_empty() {
                    out.rejected
                        .push(format!("resources[{i}]: name: must not be empty"));
                    out.unnamed_failure = true;
                    continue;
                }
                if let Some(declared) = declared.filter(|d| *d != name) {
                    // Which name was meant is unknown: neither is touched.
                    out.rejected.push(format!(
                        "resources[{i}]: name: {declared:?} holds a resource named {name:?}"
                    ));
                    continue;
                }
                let compiled = match unchanged(&name) {
                    Some(compiled) => Ok(compiled),
                    None => T::compile(&proto).map(Arc::new),
                };
                (name, compiled)
            }
        };
        if let Some(first) = seen.get(&name) {
            // Which of the two was meant is unknown: neither replaces the last good one.
            out.rejected.push(format!(
                "resources[{i}]: name: {name:?} repeats resources[{first}]"
            ));
            out.good.remove(&name);
            out.refused_names.insert(name);
            continue;
        }
        seen.insert(name.clone(), i);
        match compiled {
            Ok(compiled) => {
                let entry = Entry {
                    encoded: any.value.clone(),
                    compiled,
                    version: incoming.version.to_string(),
                };
                out.good.insert(name, entry);
            }
            Err(reason) => {
                out.rejected.push(reason);
                out.refused_names.insert(name);
            }
        }
    }
    out
}

/// The resource inside one item of a response, if weft-proxy can take it; else why not
/// (without the index).
fn checked<'a, T: Stored>(incoming: &Incoming<'a>) -> Result<&'a Any, String> {
    if let Some(wrapper) = incoming.wrapper {
        // A resource that expires must not outlive its TTL: weft-proxy keeps resources until
        // they are removed, so it refuses what it would not honour.
        if wrapper.ttl.is_some() {
            return Err("ttl: not supported (resources do not expire)".into());
        }
    }
    let Some(any) = incoming.body else {
        return Err("resource: missing (a TTL heartbeat; TTLs are not supported)".into());
    };
    if any.type_url != T::TYPE_URL {
        return Err(format!(
            "type_url: expected {}, got {}",
            T::TYPE_URL,
            any.type_url
        ));
    }
    Ok(any)
}

#[cfg(test)]
mod tests;

//! The four xDS resource types the proxy consumes, each described once by a [`ResourceType`]:
//! its type URL, how a decoded resource is named and compiled, and whether a response carries
//! the whole set or only the names asked for. The cache (which adds where each type's entries
//! live) and the client are generic over it, so there is one update path, not four copies.

use crate::config::{self, ClusterConfig, Endpoint, ListenerConfig};
use crate::router::RouteTable;
use prost::Message;
use std::collections::BTreeMap;
use std::sync::Arc;
use xds_protos::pb::envoy::config::cluster::v3::Cluster as ClusterProto;
use xds_protos::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use xds_protos::pb::envoy::config::listener::v3::Listener;
use xds_protos::pb::envoy::config::route::v3::RouteConfiguration;
use xds_protos::type_url;

/// A resource as received (its encoding: what is compared with the next version of it, far
/// smaller than the decoded message, whose every field is inline) and as compiled, with the
/// version it came in (a delta stream announces it when it reconnects, so what is held is not
/// sent again).
pub struct Entry<C> {
    pub encoded: Vec<u8>,
    pub compiled: Arc<C>,
    pub version: String,
}

impl<C> Clone for Entry<C> {
    fn clone(&self) -> Self {
        Entry {
            encoded: self.encoded.clone(),
            compiled: self.compiled.clone(),
            version: self.version.clone(),
        }
    }
}

/// The entries of one resource type, by name.
pub type Entries<T> = BTreeMap<String, Entry<<T as ResourceType>::Compiled>>;

pub trait ResourceType {
    const TYPE_URL: &'static str;
    /// State-of-the-world for this type means the whole set (LDS, CDS: what a response lacks
    /// is removed), or only the resources named in the request (RDS, EDS: a response adds or
    /// replaces, and what nobody refers to any more is pruned).
    const WHOLE_SET: bool;
    type Proto: Message + Default;
    type Compiled;

    fn name(proto: &Self::Proto) -> String;
    /// Validates and compiles one resource; the error names the resource and the field.
    fn compile(proto: &Self::Proto) -> Result<Self::Compiled, String>;
}

pub struct Listeners;
pub struct Routes;
pub struct Clusters;
pub struct Endpoints;

impl ResourceType for Listeners {
    const TYPE_URL: &'static str = type_url::LISTENER;
    const WHOLE_SET: bool = true;
    type Proto = Listener;
    type Compiled = ListenerConfig;

    fn name(l: &Listener) -> String {
        l.name.clone()
    }
    fn compile(l: &Listener) -> Result<ListenerConfig, String> {
        config::compile_listener(l).map_err(|e| e.to_string())
    }
}

impl ResourceType for Routes {
    const TYPE_URL: &'static str = type_url::ROUTE;
    const WHOLE_SET: bool = false;
    type Proto = RouteConfiguration;
    type Compiled = RouteTable;

    fn name(r: &RouteConfiguration) -> String {
        r.name.clone()
    }
    fn compile(r: &RouteConfiguration) -> Result<RouteTable, String> {
        config::compile_route_config(r).map_err(|e| e.to_string())
    }
}

impl ResourceType for Clusters {
    const TYPE_URL: &'static str = type_url::CLUSTER;
    const WHOLE_SET: bool = true;
    type Proto = ClusterProto;
    type Compiled = ClusterConfig;

    fn name(c: &ClusterProto) -> String {
        c.name.clone()
    }
    fn compile(c: &ClusterProto) -> Result<ClusterConfig, String> {
        config::compile_cluster(c).map_err(|e| e.to_string())
    }
}

impl ResourceType for Endpoints {
    const TYPE_URL: &'static str = type_url::ENDPOINT;
    const WHOLE_SET: bool = false;
    type Proto = ClusterLoadAssignment;
    type Compiled = Vec<Endpoint>;

    fn name(c: &ClusterLoadAssignment) -> String {
        c.cluster_name.clone()
    }
    fn compile(c: &ClusterLoadAssignment) -> Result<Vec<Endpoint>, String> {
        // EDS carries addresses, never names to resolve (that is what DNS clusters are for).
        config::compile_load_assignment(c, false).map_err(|e| e.to_string())
    }
}

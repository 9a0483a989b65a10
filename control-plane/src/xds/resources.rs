//! The resources one proxy should have, by type URL and name, each with a content version.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;
use xds_protos::node::NodeIdentity;
use xds_protos::pb::google::protobuf::Any;

/// One serialized resource and the version of its content.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedResource {
    pub version: String,
    pub any: Any,
}

impl VersionedResource {
    pub fn new(any: Any) -> Self {
        VersionedResource {
            version: format!("{:016x}", content_hash(&any.value)),
            any,
        }
    }
}

/// Everything generated for one proxy: type URL -> resource name -> resource.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    by_type: BTreeMap<String, BTreeMap<String, Arc<VersionedResource>>>,
}

impl Resources {
    pub fn insert(&mut self, type_url: &str, name: impl Into<String>, any: Any) {
        self.by_type
            .entry(type_url.to_string())
            .or_default()
            .insert(name.into(), Arc::new(VersionedResource::new(any)));
    }

    pub fn of_type(&self, type_url: &str) -> Option<&BTreeMap<String, Arc<VersionedResource>>> {
        self.by_type.get(type_url)
    }

    pub fn get(&self, type_url: &str, name: &str) -> Option<&Arc<VersionedResource>> {
        self.by_type.get(type_url)?.get(name)
    }

    pub fn count(&self, type_url: &str) -> usize {
        self.of_type(type_url).map_or(0, |m| m.len())
    }
}

/// Produces the resources of one proxy from a config snapshot (translate implements it).
pub trait ResourceGenerator: Send + Sync + 'static {
    fn generate(&self, node: &NodeIdentity) -> Resources;
}

/// A published configuration: what every connected proxy converges to.
pub struct ConfigVersion {
    /// Shown to proxies as `version_info`, and in `/debug/syncz`.
    pub version: String,
    pub published: Instant,
    pub generator: Arc<dyn ResourceGenerator>,
}

impl ConfigVersion {
    pub fn new(version: impl Into<String>, generator: Arc<dyn ResourceGenerator>) -> Self {
        ConfigVersion {
            version: version.into(),
            published: Instant::now(),
            generator,
        }
    }
}

/// A stable 64-bit FNV-1a hash: versions must not change between runs of weftd, so that a
/// delta client reconnecting with `initial_resource_versions` is not sent what it already has.
pub fn content_hash(bytes: &[u8]) -> u64 {
    let mut h = Fnv(0xcbf29ce484222325);
    bytes.hash(&mut h);
    h.0
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x100000001b3);
        }
    }
}

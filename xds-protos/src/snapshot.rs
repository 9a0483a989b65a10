//! The resources one proxy should have, by type URL and name, each with a content version:
//! what the control plane's translation produces and its ADS server sends. Here, beside the
//! wire types, so that neither of the two depends on the other.
//!
//! The resources of one type are held behind an `Arc`, so that what does not depend on the
//! proxy (clusters, endpoints) is one map shared by every session, and what does (listeners,
//! routes) is one map per class of proxy. A session never copies a resource's bytes: it keeps
//! references to these maps.
//!
//! Each resource is kept serialized once, as the bytes of its `Any` message: the ADS server
//! assembles a response from these shared bytes instead of encoding the resource again for
//! every proxy it is sent to.

use crate::pb::google::protobuf::Any;
use bytes::Bytes;
use prost::Message;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One serialized resource and the version of its content.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedResource {
    pub version: String,
    /// The protobuf encoding of the resource's `google.protobuf.Any`: what goes on the wire.
    pub encoded: Bytes,
}

impl VersionedResource {
    pub fn new(any: Any) -> Self {
        VersionedResource {
            version: content_version(&any),
            encoded: Bytes::from(any.encode_to_vec()),
        }
    }

    /// The resource as an `Any` again (a copy: for tests and debugging, not the push path).
    pub fn any(&self) -> Result<Any, prost::DecodeError> {
        Any::decode(self.encoded.clone())
    }
}

/// The resources of one type, by name.
pub type NamedResources = BTreeMap<String, Arc<VersionedResource>>;

/// Everything generated for one proxy: type URL -> resource name -> resource.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    by_type: BTreeMap<String, Arc<NamedResources>>,
}

impl Resources {
    pub fn insert(&mut self, type_url: &str, name: impl Into<String>, any: Any) {
        let of_type = self.by_type.entry(type_url.to_string()).or_default();
        Arc::make_mut(of_type).insert(name.into(), Arc::new(VersionedResource::new(any)));
    }

    /// Sets every resource of a type at once, sharing the map instead of copying it. A type
    /// without resources is not recorded, as with [`Resources::insert`].
    pub fn set_type(&mut self, type_url: &str, resources: Arc<NamedResources>) {
        if resources.is_empty() {
            self.by_type.remove(type_url);
        } else {
            self.by_type.insert(type_url.to_string(), resources);
        }
    }

    pub fn of_type(&self, type_url: &str) -> Option<&NamedResources> {
        self.by_type.get(type_url).map(|m| &**m)
    }

    /// The shared map of a type, for a session to keep a reference to what it sent.
    pub fn shared_of_type(&self, type_url: &str) -> Option<&Arc<NamedResources>> {
        self.by_type.get(type_url)
    }

    pub fn get(&self, type_url: &str, name: &str) -> Option<&Arc<VersionedResource>> {
        self.by_type.get(type_url)?.get(name)
    }

    pub fn count(&self, type_url: &str) -> usize {
        self.of_type(type_url).map_or(0, |m| m.len())
    }
}

/// The version of a resource: the first 64 bits of the SHA-256 of its type URL and serialized
/// bytes, in hex. Its bytes are defined (unlike `std::hash`, which may change between Rust
/// releases), so a delta client reconnecting to another build of weftd with
/// `initial_resource_versions` is not sent what it already has.
pub fn content_version(any: &Any) -> String {
    let mut h = Sha256::new();
    h.update(any.type_url.as_bytes());
    h.update([0u8]);
    h.update(&any.value);
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(type_url: &str, value: &[u8]) -> Any {
        Any {
            type_url: type_url.to_string(),
            value: value.to_vec(),
        }
    }

    #[test]
    fn version_is_the_sha256_prefix_of_type_and_bytes() {
        // SHA-256("t\0abc") computed independently (python3 hashlib): its first 8 bytes.
        assert_eq!(content_version(&any("t", b"abc")), "7f215208fc051753");
    }

    #[test]
    fn version_depends_on_type_and_bytes() {
        let a = content_version(&any("t", b"abc"));
        assert_ne!(a, content_version(&any("t", b"abd")));
        assert_ne!(a, content_version(&any("u", b"abc")));
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn a_resource_keeps_its_any_encoded_once() {
        let r = VersionedResource::new(any("t", b"abc"));
        assert_eq!(r.any().unwrap(), any("t", b"abc"));
        assert_eq!(r.version, content_version(&any("t", b"abc")));
    }

    #[test]
    fn shared_maps_are_not_copied() {
        let mut shared = NamedResources::new();
        shared.insert("c".into(), Arc::new(VersionedResource::new(any("t", b"x"))));
        let shared = Arc::new(shared);
        let mut a = Resources::default();
        let mut b = Resources::default();
        a.set_type("t", shared.clone());
        b.set_type("t", shared.clone());
        assert!(Arc::ptr_eq(
            a.shared_of_type("t").unwrap(),
            b.shared_of_type("t").unwrap()
        ));
    }
}

//! The Kubernetes envelope around every resource: kind, metadata, and where it was read from.

use super::destination_rule::DestinationRule;
use super::service_entry::{ServiceEntry, WorkloadEntrySpec};
use super::sidecar::Sidecar;
use super::telemetry::Telemetry;
use super::virtual_service::VirtualService;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The API group of the networking kinds weft reads.
pub const API_GROUP: &str = "networking.istio.io";
/// The versions of [`API_GROUP`] that are accepted; they share one schema.
pub const API_VERSIONS: [&str; 3] = ["v1", "v1beta1", "v1alpha3"];
/// The API group of Telemetry.
pub const TELEMETRY_API_GROUP: &str = "telemetry.istio.io";
/// The versions of [`TELEMETRY_API_GROUP`] that are accepted; they share one schema.
pub const TELEMETRY_API_VERSIONS: [&str; 2] = ["v1", "v1alpha1"];
/// The namespace of a resource whose metadata names none.
pub const DEFAULT_NAMESPACE: &str = "default";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    VirtualService,
    DestinationRule,
    ServiceEntry,
    WorkloadEntry,
    Telemetry,
    Sidecar,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::VirtualService,
        Kind::DestinationRule,
        Kind::ServiceEntry,
        Kind::WorkloadEntry,
        Kind::Telemetry,
        Kind::Sidecar,
    ];

    /// The API group the kind belongs to, and its accepted versions.
    pub fn api_group(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Kind::Telemetry => (TELEMETRY_API_GROUP, &TELEMETRY_API_VERSIONS),
            _ => (API_GROUP, &API_VERSIONS),
        }
    }

    /// The Istio kind name, as written in `kind:`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::VirtualService => "VirtualService",
            Kind::DestinationRule => "DestinationRule",
            Kind::ServiceEntry => "ServiceEntry",
            Kind::WorkloadEntry => "WorkloadEntry",
            Kind::Telemetry => "Telemetry",
            Kind::Sidecar => "Sidecar",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn default_namespace() -> String {
    DEFAULT_NAMESPACE.to_string()
}

/// The metadata fields weft uses. Others (uid, resourceVersion, managedFields, ...) are
/// accepted and dropped, since files are often copied out of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Default for ObjectMeta {
    fn default() -> Self {
        ObjectMeta {
            name: String::new(),
            namespace: default_namespace(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }
}

impl ObjectMeta {
    pub fn new(namespace: &str, name: &str) -> Self {
        ObjectMeta {
            name: name.to_string(),
            namespace: namespace.to_string(),
            ..ObjectMeta::default()
        }
    }
}

/// A parsed resource and the file it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource<T> {
    #[serde(rename = "metadata")]
    pub meta: ObjectMeta,
    pub spec: T,
    #[serde(default)]
    pub file: PathBuf,
}

/// The spec types of the four kinds.
pub trait Spec: Sized {
    const KIND: Kind;
    fn into_any(resource: Resource<Self>) -> AnyResource;
}

impl Spec for VirtualService {
    const KIND: Kind = Kind::VirtualService;
    fn into_any(resource: Resource<Self>) -> AnyResource {
        AnyResource::VirtualService(Arc::new(resource))
    }
}

impl Spec for DestinationRule {
    const KIND: Kind = Kind::DestinationRule;
    fn into_any(resource: Resource<Self>) -> AnyResource {
        AnyResource::DestinationRule(Arc::new(resource))
    }
}

impl Spec for ServiceEntry {
    const KIND: Kind = Kind::ServiceEntry;
    fn into_any(resource: Resource<Self>) -> AnyResource {
        AnyResource::ServiceEntry(Arc::new(resource))
    }
}

impl Spec for WorkloadEntrySpec {
    const KIND: Kind = Kind::WorkloadEntry;
    fn into_any(resource: Resource<Self>) -> AnyResource {
        AnyResource::WorkloadEntry(Arc::new(resource))
    }
}

impl Spec for Telemetry {
    const KIND: Kind = Kind::Telemetry;
    fn into_any(resource: Resource<Self>) -> AnyResource {
        AnyResource::Telemetry(Arc::new(resource))
    }
}

impl Spec for Sidecar {
    const KIND: Kind = Kind::Sidecar;
    fn into_any(resource: Resource<Self>) -> AnyResource {
        AnyResource::Sidecar(Arc::new(resource))
    }
}

impl<T: Spec> Resource<T> {
    pub fn new(namespace: &str, name: &str, spec: T) -> Self {
        Resource {
            meta: ObjectMeta::new(namespace, name),
            spec,
            file: PathBuf::new(),
        }
    }

    pub fn key(&self) -> ResourceKey {
        ResourceKey::new(T::KIND, &self.meta.namespace, &self.meta.name)
    }
}

/// Identifies a resource: two resources with the same key are the same resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ResourceKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ResourceKey {
    pub fn new(kind: Kind, namespace: &str, name: &str) -> Self {
        ResourceKey {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

/// `VirtualService default/reviews`.
impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// A resource of any of the four kinds, shared: the store, the set translation reads and
/// every scoped view of it hold the same allocation (with 10,000 services, each copy of every
/// resource was ~65 MB, measured, and a reload held several).
#[derive(Debug, Clone, PartialEq)]
pub enum AnyResource {
    VirtualService(Arc<Resource<VirtualService>>),
    DestinationRule(Arc<Resource<DestinationRule>>),
    ServiceEntry(Arc<Resource<ServiceEntry>>),
    WorkloadEntry(Arc<Resource<WorkloadEntrySpec>>),
    Telemetry(Arc<Resource<Telemetry>>),
    Sidecar(Arc<Resource<Sidecar>>),
}

impl AnyResource {
    pub fn kind(&self) -> Kind {
        match self {
            AnyResource::VirtualService(_) => Kind::VirtualService,
            AnyResource::DestinationRule(_) => Kind::DestinationRule,
            AnyResource::ServiceEntry(_) => Kind::ServiceEntry,
            AnyResource::WorkloadEntry(_) => Kind::WorkloadEntry,
            AnyResource::Telemetry(_) => Kind::Telemetry,
            AnyResource::Sidecar(_) => Kind::Sidecar,
        }
    }

    pub fn meta(&self) -> &ObjectMeta {
        match self {
            AnyResource::VirtualService(r) => &r.meta,
            AnyResource::DestinationRule(r) => &r.meta,
            AnyResource::ServiceEntry(r) => &r.meta,
            AnyResource::WorkloadEntry(r) => &r.meta,
            AnyResource::Telemetry(r) => &r.meta,
            AnyResource::Sidecar(r) => &r.meta,
        }
    }

    pub fn file(&self) -> &Path {
        match self {
            AnyResource::VirtualService(r) => &r.file,
            AnyResource::DestinationRule(r) => &r.file,
            AnyResource::ServiceEntry(r) => &r.file,
            AnyResource::WorkloadEntry(r) => &r.file,
            AnyResource::Telemetry(r) => &r.file,
            AnyResource::Sidecar(r) => &r.file,
        }
    }

    pub fn key(&self) -> ResourceKey {
        let meta = self.meta();
        ResourceKey::new(self.kind(), &meta.namespace, &meta.name)
    }
}

/// Written back as a Kubernetes object (`apiVersion`, `kind`, `metadata`, `spec`), so that
/// what weftctl prints can be applied again.
impl Serialize for AnyResource {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_struct("Resource", 4)?;
        let (group, versions) = self.kind().api_group();
        out.serialize_field("apiVersion", &format!("{group}/{}", versions[0]))?;
        out.serialize_field("kind", self.kind().name())?;
        out.serialize_field("metadata", self.meta())?;
        match self {
            AnyResource::VirtualService(r) => out.serialize_field("spec", &r.spec)?,
            AnyResource::DestinationRule(r) => out.serialize_field("spec", &r.spec)?,
            AnyResource::ServiceEntry(r) => out.serialize_field("spec", &r.spec)?,
            AnyResource::WorkloadEntry(r) => out.serialize_field("spec", &r.spec)?,
            AnyResource::Telemetry(r) => out.serialize_field("spec", &r.spec)?,
            AnyResource::Sidecar(r) => out.serialize_field("spec", &r.spec)?,
        }
        out.end()
    }
}

//! Istio's networking resources (VirtualService, DestinationRule, ServiceEntry,
//! WorkloadEntry, Sidecar of networking.istio.io v1, v1beta1 and v1alpha3), Telemetry
//! (telemetry.istio.io v1, v1alpha1) and the MeshConfig file as Rust types, how they are
//! read from YAML, and how they are validated, with diagnostics that name the file, the
//! resource and the field.
//!
//! - [`parse_file`] reads one file; `source::load_dir` and [`Store`] read a folder.
//! - Validation of one resource is in `validate`; checks across resources (duplicates,
//!   subsets that must exist) run where the whole set is known, in the store.
//! - Fields that parse but that weft-proxy does not act on yet produce warnings where that
//!   changes traffic; the lists are [`acted_on_fields`] and [`without_traffic_effect`].

mod config_set;
mod destination_rule;
mod diagnostic;
pub mod duration;
mod host;
mod locate;
pub mod mesh_config;
mod meta;
mod parse;
mod path;
mod service_entry;
pub mod sidecar;
mod string_match;
pub mod telemetry;
pub mod validate;
mod virtual_service;

pub use config_set::ConfigSet;
pub use destination_rule::*;
pub use diagnostic::{count as count_diagnostics, Diagnostic, Severity};
pub use host::{
    fqdn, host_matches, resolve_destination_rule, resolve_host, resolve_virtual_service,
    CLUSTER_DOMAIN,
};
pub use locate::locate;
pub use mesh_config::{
    load_mesh_config, parse_mesh_config, FileLogProvider, LoadedMeshConfig, LogLine, MeshAccessLog,
    MeshConfig, MeshConfigError, OtelProvider, OutboundTrafficPolicy,
};
pub use meta::{
    AnyResource, Kind, ObjectMeta, Resource, ResourceKey, Spec, API_GROUP, API_VERSIONS,
    DEFAULT_NAMESPACE, TELEMETRY_API_GROUP, TELEMETRY_API_VERSIONS,
};
pub use parse::{parse_file, parse_file_detailed, ParsedDoc, ParsedFile};
pub use path::{FieldPath, Segment};
pub use service_entry::*;
pub use sidecar::Sidecar;
pub use string_match::StringMatch;
pub use telemetry::Telemetry;
pub use validate::{acted_on_fields, validate, without_traffic_effect, Finding, NOT_ACTED_ON};
pub use virtual_service::*;

/// For `skip_serializing_if` on booleans that default to false.
fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
mod tests;

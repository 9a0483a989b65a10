//! Validation of single resources, as Istio's webhook would do it, plus the warnings for
//! fields weft-proxy does not act on yet where that changes traffic. Checks that need the whole set of resources
//! (duplicates, subsets that must exist) live in `cross`, run by the store.

mod acted_on;
mod common;
pub mod cross;
mod destination_rule;
mod http_policies;
pub mod regex;
mod service_entry;
mod sidecar;
mod telemetry;
mod virtual_service;

pub use acted_on::{acted_on_fields, without_traffic_effect, NOT_ACTED_ON};

use super::diagnostic::Severity;
use super::meta::AnyResource;
use super::path::FieldPath;

/// One problem in one resource, at a field path relative to the document root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub path: FieldPath,
    pub message: String,
}

/// Collects findings while a resource is walked.
#[derive(Debug, Default)]
pub(crate) struct Findings(pub(crate) Vec<Finding>);

impl Findings {
    pub(crate) fn error(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.push(Severity::Error, path, message);
    }

    pub(crate) fn warning(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.push(Severity::Warning, path, message);
    }

    fn push(&mut self, severity: Severity, path: &FieldPath, message: impl Into<String>) {
        self.0.push(Finding {
            severity,
            path: path.clone(),
            message: message.into(),
        });
    }
}

/// Validates one resource on its own: errors make it invalid, warnings do not.
pub fn validate(resource: &AnyResource) -> Vec<Finding> {
    let mut findings = Findings::default();
    let spec = match resource {
        AnyResource::VirtualService(r) => {
            virtual_service::check(&r.spec, &mut findings);
            serde_json::to_value(&r.spec)
        }
        AnyResource::DestinationRule(r) => {
            destination_rule::check(&r.spec, &mut findings);
            serde_json::to_value(&r.spec)
        }
        AnyResource::ServiceEntry(r) => {
            service_entry::check_service_entry(&r.spec, &mut findings);
            serde_json::to_value(&r.spec)
        }
        AnyResource::WorkloadEntry(r) => {
            service_entry::check_workload_entry(&r.spec, &mut findings);
            serde_json::to_value(&r.spec)
        }
        AnyResource::Telemetry(r) => {
            telemetry::check(&r.spec, &mut findings);
            serde_json::to_value(&r.spec)
        }
        AnyResource::Sidecar(r) => {
            sidecar::check(&r.spec, &mut findings);
            serde_json::to_value(&r.spec)
        }
    };
    // Serializing plain data cannot fail; if it ever did, only the warnings would be missing.
    if let Ok(spec) = spec {
        acted_on::check(resource.kind(), &spec, &mut findings);
    }
    findings.0
}

#[cfg(test)]
mod istio_rules_tests;
#[cfg(test)]
mod tests;

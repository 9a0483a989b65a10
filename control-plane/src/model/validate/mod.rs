//! Validation of single resources, as Istio's webhook would do it, plus the warnings for
//! fields weft-proxy does not act on yet. Checks that need the whole set of resources
//! (duplicates, subsets that must exist) live in `cross`, run by the store.

mod acted_on;
mod common;
pub mod cross;
mod destination_rule;
mod service_entry;
mod virtual_service;

pub use acted_on::{acted_on_fields, NOT_ACTED_ON};

use super::diagnostic::Severity;
use super::meta::AnyResource;
use super::path::FieldPath;

/// One problem in one resource, at a field path relative to the document root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub path: FieldPath,
    pub message: String,
    /// An error the proxies judge for themselves (a regex: Envoy compiles RE2, weft-proxy the
    /// Rust dialect, and only the proxy knows which it runs). The resource is still sent on;
    /// a proxy that refuses it NACKs, keeps its last good routes, and the NACK shows in
    /// `/debug/syncz`. weftd and `weftctl analyze` still report it as an error.
    pub left_to_proxies: bool,
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

    /// An error the proxies are the judges of (see [`Finding::left_to_proxies`]).
    pub(crate) fn proxy_error(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.push(Severity::Error, path, message);
        if let Some(last) = self.0.last_mut() {
            last.left_to_proxies = true;
        }
    }

    fn push(&mut self, severity: Severity, path: &FieldPath, message: impl Into<String>) {
        self.0.push(Finding {
            severity,
            path: path.clone(),
            message: message.into(),
            left_to_proxies: false,
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
    };
    // Serializing plain data cannot fail; if it ever did, only the warnings would be missing.
    if let Ok(spec) = spec {
        acted_on::check(resource.kind(), &spec, &mut findings);
    }
    findings.0
}

#[cfg(test)]
mod tests;

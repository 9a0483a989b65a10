//! Sidecar (networking.istio.io) and `exportTo`: which hosts a proxy may reach.
//!
//! Istio's rules, as its reference documents them:
//!
//! - A resource's `exportTo` lists the namespaces that see it: `*` every namespace (also what
//!   an empty list means), `.` its own namespace, `~` none, or namespace names.
//! - A Sidecar applies to the workloads of its own namespace (`ConfigSet::sidecar_for`): the one whose `workloadSelector`
//!   selects the workload wins over the namespace's Sidecar without a selector, which wins over
//!   the Sidecar without a selector in the mesh's root namespace (the mesh-wide default).
//! - `egress[].hosts` entries are `namespace/dnsName`. The namespace is `*` (any), `.` (the
//!   Sidecar's own namespace), `~` (none: nothing matches) or a name; the dnsName is `*` (every
//!   host of those namespaces), `*.suffix` or a fully qualified name.
//!
//! The functions here are pure; `translate::scope` applies them to what a proxy is sent.

use super::host::host_matches;
use super::service_entry::WorkloadSelector;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Sidecar {
    #[serde(alias = "workload_selector", skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<EgressListener>,
    /// Inbound listeners, outbound traffic policy and connection pool: parsed, and warned about
    /// as not acted on (see `validate::acted_on`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<serde_json::Value>,
    #[serde(
        alias = "outbound_traffic_policy",
        skip_serializing_if = "Option::is_none"
    )]
    pub outbound_traffic_policy: Option<serde_json::Value>,
    #[serde(
        alias = "inbound_connection_pool",
        skip_serializing_if = "Option::is_none"
    )]
    pub inbound_connection_pool: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressListener {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    #[serde(alias = "capture_mode", skip_serializing_if = "Option::is_none")]
    pub capture_mode: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// Whether a resource of `resource_ns` with `export_to` is visible to proxies of `proxy_ns`.
pub fn exported_to(export_to: &[String], resource_ns: &str, proxy_ns: &str) -> bool {
    export_to.is_empty()
        || export_to.iter().any(|e| match e.as_str() {
            "*" => true,
            "." => resource_ns == proxy_ns,
            "~" => false,
            ns => ns == proxy_ns,
        })
}

/// The namespace part of an egress host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EgressNamespace {
    /// `*`
    Any,
    /// `.`: the Sidecar's own namespace.
    Own,
    /// `~`: no namespace.
    None,
    Named(String),
}

/// One `egress[].hosts` entry, `namespace/dnsName`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressHost {
    pub namespace: EgressNamespace,
    /// `*`, `*.suffix` or a fully qualified name.
    pub dns_name: String,
}

/// Why an egress host cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressHostError {
    #[error("{0:?} must be namespace/dnsName (e.g. \"./*\", \"prod/reviews.prod.svc.cluster.local\", \"*/*.example.com\")")]
    NoNamespace(String),
    #[error("{0:?}: the namespace must be \"*\", \".\", \"~\" or a namespace name")]
    BadNamespace(String),
    #[error(
        "{0:?}: the dnsName must be \"*\", a name with a leading \"*.\" or a fully qualified name"
    )]
    BadDnsName(String),
}

impl EgressHost {
    pub fn parse(text: &str) -> Result<EgressHost, EgressHostError> {
        let (ns, dns) = text
            .split_once('/')
            .ok_or_else(|| EgressHostError::NoNamespace(text.to_string()))?;
        let namespace = match ns {
            "*" => EgressNamespace::Any,
            "." => EgressNamespace::Own,
            "~" => EgressNamespace::None,
            ns if is_dns_label(ns) => EgressNamespace::Named(ns.to_string()),
            _ => return Err(EgressHostError::BadNamespace(text.to_string())),
        };
        let name = dns.strip_prefix("*.").unwrap_or(dns);
        let valid = dns == "*"
            || (!name.is_empty()
                && name.len() <= 253
                && name.split('.').all(is_dns_label_ci)
                && !name.contains('*'));
        if !valid {
            return Err(EgressHostError::BadDnsName(text.to_string()));
        }
        Ok(EgressHost {
            namespace,
            dns_name: dns.to_string(),
        })
    }

    /// Whether this entry of a Sidecar in `sidecar_ns` covers `host` declared in `host_ns`.
    /// A wildcard `host` (a VirtualService's `*.example.com`) is covered by an entry it
    /// matches as well, as both name the same traffic.
    pub fn covers(&self, sidecar_ns: &str, host_ns: &str, host: &str) -> bool {
        let ns_ok = match &self.namespace {
            EgressNamespace::Any => true,
            EgressNamespace::Own => host_ns == sidecar_ns,
            EgressNamespace::None => false,
            EgressNamespace::Named(ns) => ns == host_ns,
        };
        ns_ok
            && (self.dns_name == "*"
                || host_matches(&self.dns_name, host)
                || (host.starts_with('*') && host_matches(host, &self.dns_name)))
    }
}

/// A DNS-1123 label: what a namespace name is.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A label of a host name, in any case.
fn is_dns_label_ci(s: &str) -> bool {
    is_dns_label(&s.to_ascii_lowercase())
}

#[cfg(test)]
mod tests;

//! Telemetry (telemetry.istio.io v1 and v1alpha1): per mesh, namespace or workload, which
//! tracing provider spans go to, the sampling percentage, custom span tags, and which access
//! log providers write a line per request.
//!
//! Scope is Istio's: a Telemetry in the root namespace without a selector is mesh-wide, one in
//! another namespace without a selector covers that namespace, and one with a selector covers
//! the workloads whose labels match. The narrower scope overrides the fields it sets. Access
//! logging (providers, `disabled`, `match.mode`) is resolved the same way, as Istio merges it
//! (see `translate::access_log`). Metrics parse and warn as not acted on (see
//! `validate::acted_on`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Telemetry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<TelemetrySelector>,
    /// Gateway API attachment; refused (weft has no gateways).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tracing: Vec<TracingSpec>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub access_logging: Vec<AccessLoggingSpec>,
}

/// One `accessLogging` entry: which providers log (none: the parent scope's), on which side,
/// or `disabled` to stop them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessLoggingSpec {
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub r#match: Option<TracingMatch>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// A CEL expression; refused (weft-proxy has no access log filters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<serde_json::Value>,
}

impl AccessLoggingSpec {
    pub fn mode(&self) -> TracingMode {
        TracingMode::parse(self.r#match.as_ref().and_then(|m| m.mode.as_deref()))
            .unwrap_or(TracingMode::ClientAndServer)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct TelemetrySelector {
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct TracingSpec {
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub r#match: Option<TracingMatch>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub random_sampling_percentage: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_span_reporting: Option<bool>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_tags: BTreeMap<String, CustomTag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_request_id_for_trace_sampling: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct TracingMatch {
    /// CLIENT, SERVER or CLIENT_AND_SERVER (the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderRef {
    pub name: String,
}

/// Exactly one of the three is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomTag {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub literal: Option<LiteralTag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvironmentTag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderTag>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiteralTag {
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentTag {
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub default_value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderTag {
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub default_value: String,
}

/// Which side of a request a tracing entry covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TracingMode {
    Client,
    Server,
    ClientAndServer,
}

impl TracingMode {
    pub fn parse(mode: Option<&str>) -> Option<TracingMode> {
        match mode {
            None | Some("CLIENT_AND_SERVER") => Some(TracingMode::ClientAndServer),
            Some("CLIENT") => Some(TracingMode::Client),
            Some("SERVER") => Some(TracingMode::Server),
            Some(_) => None,
        }
    }

    pub fn covers_client(self) -> bool {
        self != TracingMode::Server
    }

    pub fn covers_server(self) -> bool {
        self != TracingMode::Client
    }
}

impl TracingSpec {
    pub fn mode(&self) -> TracingMode {
        TracingMode::parse(self.r#match.as_ref().and_then(|m| m.mode.as_deref()))
            .unwrap_or(TracingMode::ClientAndServer)
    }
}

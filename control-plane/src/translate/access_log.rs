//! Access logs: which loggers a connection manager writes a line per request with, for one
//! side (client: outbound listeners; server: a sidecar's inbound listener) of one proxy.
//!
//! Resolution is Istio's. When no Telemetry that covers the proxy sets `accessLogging` and
//! MeshConfig has no `defaultProviders.accessLogging`, the mesh-wide log is in force:
//! MeshConfig's `accessLogFile` (empty: none) in its encoding and format, or, when the mesh
//! config does not set `accessLogFile`, what weftd's `--access-log-format` / `--no-access-log`
//! say (weftd lets an explicit flag replace the mesh config's three fields).
//!
//! Otherwise the providers are merged from the default providers, then the mesh-wide
//! Telemetry, the namespace's and the workload's, narrowest last: the narrowest scope that
//! names providers decides which are in play; an entry without providers applies to its
//! parent scope's; an entry whose `match.mode` does not cover the side is skipped; `disabled:
//! true` removes its providers and a later entry can add them back. Each provider left writes
//! a line: the built-in `envoy` (or any provider called `envoy` without a format of its own) in
//! the mesh's format, another `envoyFileAccessLog` in its own format or Istio's text line.
//!
//! Every logger writes to standard output (`envoy.access_loggers.stdout`): weft-proxy refuses
//! Envoy's file logger for any other path, and the mesh config loader has already reported
//! such paths as not applied.

use super::tracing::{covering, Side};
use super::{AccessLogFormat, MeshSnapshot};
use crate::model::mesh_config::access_log::BUILTIN_ENVOY_PROVIDER;
use crate::model::LogLine;
use std::collections::BTreeSet;
use xds_protos::any::pack;
use xds_protos::node::NodeIdentity;
use xds_protos::pb::envoy::config::accesslog::v3::{access_log, AccessLog};
use xds_protos::pb::envoy::config::core::v3::{
    data_source, substitution_format_string, DataSource, SubstitutionFormatString,
};
use xds_protos::pb::envoy::extensions::access_loggers::stream::v3::{
    stdout_access_log, StdoutAccessLog,
};
use xds_protos::pb::google::protobuf::{value, ListValue, Struct, Value};
use xds_protos::type_url::STDOUT_ACCESS_LOG;

pub const STDOUT_LOGGER: &str = "envoy.access_loggers.stdout";

/// Istio's default text line (what istiod configures for `accessLogFile` without a format).
pub const ISTIO_TEXT_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% \"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n";

/// Istio's default JSON keys (`accessLogEncoding: JSON` without a format), each with the
/// Envoy operator it is filled from.
pub const ISTIO_JSON_FIELDS: [(&str, &str); 24] = [
    ("start_time", "%START_TIME%"),
    ("method", "%REQ(:METHOD)%"),
    ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
    ("protocol", "%PROTOCOL%"),
    ("response_code", "%RESPONSE_CODE%"),
    ("response_flags", "%RESPONSE_FLAGS%"),
    ("response_code_details", "%RESPONSE_CODE_DETAILS%"),
    (
        "connection_termination_details",
        "%CONNECTION_TERMINATION_DETAILS%",
    ),
    (
        "upstream_transport_failure_reason",
        "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    ),
    ("bytes_received", "%BYTES_RECEIVED%"),
    ("bytes_sent", "%BYTES_SENT%"),
    ("duration", "%DURATION%"),
    (
        "upstream_service_time",
        "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    ),
    ("x_forwarded_for", "%REQ(X-FORWARDED-FOR)%"),
    ("user_agent", "%REQ(USER-AGENT)%"),
    ("request_id", "%REQ(X-REQUEST-ID)%"),
    ("authority", "%REQ(:AUTHORITY)%"),
    ("upstream_host", "%UPSTREAM_HOST%"),
    ("upstream_cluster", "%UPSTREAM_CLUSTER%"),
    ("route_name", "%ROUTE_NAME%"),
    ("upstream_local_address", "%UPSTREAM_LOCAL_ADDRESS%"),
    ("downstream_local_address", "%DOWNSTREAM_LOCAL_ADDRESS%"),
    ("downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%"),
    ("requested_server_name", "%REQUESTED_SERVER_NAME%"),
];

/// weftd's access log flags against the mesh config: an explicit `--no-access-log` or
/// `--access-log-format` is the operator's word for this run and clears the mesh config's
/// `accessLogFile`, `accessLogEncoding` and `accessLogFormat` (returning true when it cleared
/// any); without one, the mesh config decides, then the default (Istio's text line). Returns
/// the value for [`super::TranslateOptions::access_log`].
pub fn apply_flags(
    mesh_config: &mut crate::model::MeshConfig,
    no_access_log: bool,
    format: Option<AccessLogFormat>,
) -> (Option<AccessLogFormat>, bool) {
    let log = &mut mesh_config.access_log;
    let replaced =
        (no_access_log || format.is_some()) && (log.file.is_some() || log.format.is_some());
    if replaced {
        log.file = None;
        log.format = None;
    }
    let choice = (!no_access_log).then(|| format.unwrap_or(AccessLogFormat::Istio));
    (choice, replaced)
}

/// One logger in force: how its line is written.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedLog {
    pub line: LogLine,
    pub omit_empty_values: bool,
}

/// The connection manager's `access_log` for one side of `node`.
pub fn access_log(mesh: &MeshSnapshot, node: &NodeIdentity, side: Side) -> Vec<AccessLog> {
    resolve(mesh, node, side)
        .iter()
        .map(stdout_logger)
        .collect()
}

/// The loggers in force for one side of `node`, in provider-name order.
pub fn resolve(mesh: &MeshSnapshot, node: &NodeIdentity, side: Side) -> Vec<ResolvedLog> {
    let mc = &mesh.options.mesh_config;
    let levels: Vec<_> = covering(&mesh.config.telemetries, &mc.root_namespace, node)
        .filter(|t| !t.spec.access_logging.is_empty())
        .collect();
    let defaults = &mc.access_log.default_providers;
    if levels.is_empty() && defaults.is_empty() {
        return mesh_wide(mesh).into_iter().collect();
    }
    // The narrowest scope that names providers decides which are in play.
    let mut in_scope: BTreeSet<&str> = defaults.iter().map(String::as_str).collect();
    for t in &levels {
        let named: BTreeSet<&str> = t
            .spec
            .access_logging
            .iter()
            .flat_map(|e| e.providers.iter().map(|p| p.name.as_str()))
            .collect();
        if !named.is_empty() {
            in_scope = named;
        }
    }
    let mut on: BTreeSet<&str> = if levels.is_empty() {
        in_scope.clone()
    } else {
        BTreeSet::new()
    };
    let mut parent: Vec<&str> = defaults.iter().map(String::as_str).collect();
    for entry in levels.iter().flat_map(|t| t.spec.access_logging.iter()) {
        let names: Vec<&str> = if entry.providers.is_empty() {
            parent.clone()
        } else {
            entry.providers.iter().map(|p| p.name.as_str()).collect()
        };
        parent = names.clone();
        let covers = match side {
            Side::Client => entry.mode().covers_client(),
            Side::Server => entry.mode().covers_server(),
        };
        for name in names.into_iter().filter(|n| in_scope.contains(n)) {
            if !covers {
                continue;
            }
            if entry.disabled == Some(true) {
                on.remove(name);
            } else {
                on.insert(name);
            }
        }
    }
    on.into_iter()
        .filter_map(|name| provider_log(mesh, node, name))
        .collect()
}

/// The mesh-wide log: MeshConfig's `accessLogFile`, else weftd's flags.
fn mesh_wide(mesh: &MeshSnapshot) -> Option<ResolvedLog> {
    let on = match mesh.options.mesh_config.access_log.file.as_deref() {
        Some(path) => !path.is_empty(),
        None => mesh.options.access_log.is_some(),
    };
    on.then(|| ResolvedLog {
        line: mesh_line(mesh),
        omit_empty_values: false,
    })
}

/// The mesh's format: MeshConfig's encoding and format, else weftd's `--access-log-format`.
fn mesh_line(mesh: &MeshSnapshot) -> LogLine {
    if let Some(line) = &mesh.options.mesh_config.access_log.format {
        return line.clone();
    }
    match mesh.options.access_log {
        Some(AccessLogFormat::Envoy) => LogLine::EnvoyText,
        Some(AccessLogFormat::Json) => LogLine::IstioJson,
        Some(AccessLogFormat::Istio) | None => LogLine::IstioText,
    }
}

fn provider_log(mesh: &MeshSnapshot, node: &NodeIdentity, name: &str) -> Option<ResolvedLog> {
    let Some(p) = mesh.options.mesh_config.access_log.provider(name) else {
        ::tracing::warn!(
            provider = %name,
            namespace = %node.namespace,
            workload = %node.workload,
            "access log provider is not an envoyFileAccessLog provider of the mesh config \
             (nor the built-in envoy): it writes nothing"
        );
        return None;
    };
    let line = match p.format {
        Some(line) => line,
        // As Istio: the built-in provider without a format of its own writes the mesh's.
        None if name == BUILTIN_ENVOY_PROVIDER && !p.omit_empty_values => mesh_line(mesh),
        None => LogLine::IstioText,
    };
    Some(ResolvedLog {
        line,
        omit_empty_values: p.omit_empty_values,
    })
}

/// Whether the access logs of a proxy depend on who it is (its namespace and the labels
/// Telemetry selectors read): only when some Telemetry sets `accessLogging`.
pub fn reads_proxy(mesh: &MeshSnapshot) -> bool {
    mesh.config
        .telemetries
        .iter()
        .any(|t| !t.spec.access_logging.is_empty())
}

/// The label keys some Telemetry selector names.
pub fn label_keys(mesh: &MeshSnapshot) -> impl Iterator<Item = &str> {
    mesh.config
        .telemetries
        .iter()
        .filter_map(|t| t.spec.selector.as_ref())
        .flat_map(|s| s.match_labels.keys().map(String::as_str))
}

fn stdout_logger(log: &ResolvedLog) -> AccessLog {
    let format = |format| SubstitutionFormatString {
        format: Some(format),
        omit_empty_values: log.omit_empty_values,
        ..Default::default()
    };
    let text = |t: &str| {
        format(substitution_format_string::Format::TextFormatSource(
            DataSource {
                specifier: Some(data_source::Specifier::InlineString(t.to_string())),
                ..Default::default()
            },
        ))
    };
    let log_format = match &log.line {
        // Envoy's default needs no format (and only the mesh's format can be it, which never
        // omits empty values).
        LogLine::EnvoyText => None,
        LogLine::IstioText => Some(text(ISTIO_TEXT_FORMAT)),
        LogLine::Text(t) => Some(text(t)),
        LogLine::IstioJson => {
            let fields = ISTIO_JSON_FIELDS
                .iter()
                .map(|(k, v)| (k.to_string(), string_value(v)))
                .collect();
            Some(format(substitution_format_string::Format::JsonFormat(
                Struct { fields },
            )))
        }
        LogLine::Json(map) => Some(format(substitution_format_string::Format::JsonFormat(
            to_struct(map),
        ))),
    };
    let config = StdoutAccessLog {
        access_log_format: log_format.map(stdout_access_log::AccessLogFormat::LogFormat),
    };
    AccessLog {
        name: STDOUT_LOGGER.to_string(),
        config_type: Some(access_log::ConfigType::TypedConfig(pack(
            STDOUT_ACCESS_LOG,
            &config,
        ))),
        ..Default::default()
    }
}

fn string_value(s: &str) -> Value {
    Value {
        kind: Some(value::Kind::StringValue(s.to_string())),
    }
}

fn to_struct(map: &serde_json::Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: map.iter().map(|(k, v)| (k.clone(), to_value(v))).collect(),
    }
}

fn to_value(v: &serde_json::Value) -> Value {
    let kind = match v {
        serde_json::Value::Null => value::Kind::NullValue(0),
        serde_json::Value::Bool(b) => value::Kind::BoolValue(*b),
        serde_json::Value::Number(n) => value::Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => value::Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => value::Kind::ListValue(ListValue {
            values: items.iter().map(to_value).collect(),
        }),
        serde_json::Value::Object(map) => value::Kind::StructValue(to_struct(map)),
    };
    Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests;

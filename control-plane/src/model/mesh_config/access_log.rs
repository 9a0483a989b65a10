//! MeshConfig's access log settings: the mesh-wide log (`accessLogFile`, `accessLogEncoding`,
//! `accessLogFormat`), the `envoyFileAccessLog` extension providers Telemetry resources name,
//! and `defaultProviders.accessLogging`.
//!
//! Istio's semantics: `accessLogFile` empty turns the mesh-wide log off; a format without a
//! trailing newline gets one; with `accessLogEncoding: JSON` the format is a JSON object whose
//! values are Envoy command operators, and without a format each encoding has Istio's default
//! (the text line, or the JSON object with Istio's keys). The built-in provider `envoy` writes
//! to `/dev/stdout` in the mesh's format, unless `extensionProviders` redefines it.
//!
//! weft-proxy writes access logs to its standard output only. A path other than
//! `/dev/stdout` is reported as not applied and the lines go to standard output, so that a
//! proxy never receives a logger it must refuse.

use serde::Deserialize;
use std::collections::BTreeMap;

/// Where Envoy's file logger writes standard output.
pub const DEV_STDOUT: &str = "/dev/stdout";
/// The access log provider every mesh has unless `extensionProviders` redefines it.
pub const BUILTIN_ENVOY_PROVIDER: &str = "envoy";

/// How each line is written.
#[derive(Debug, Clone, PartialEq)]
pub enum LogLine {
    /// Envoy's default text line.
    EnvoyText,
    /// Istio's default text line (Envoy's plus the details that explain a 503).
    IstioText,
    /// Istio's default JSON object.
    IstioJson,
    /// A format string (ends with a newline).
    Text(String),
    /// A JSON object whose string values are format strings.
    Json(serde_json::Map<String, serde_json::Value>),
}

/// The access log parts of MeshConfig.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeshAccessLog {
    /// `accessLogFile`: `None` when the file does not set it (weftd's flags then decide);
    /// `Some("")` turns the mesh-wide log off.
    pub file: Option<String>,
    /// `accessLogEncoding` with `accessLogFormat`; `None` when neither is set.
    pub format: Option<LogLine>,
    /// `extensionProviders[].envoyFileAccessLog`, by name.
    pub providers: BTreeMap<String, FileLogProvider>,
    /// `defaultProviders.accessLogging`: the providers in force where no Telemetry names one.
    pub default_providers: Vec<String>,
}

/// `extensionProviders[].envoyFileAccessLog`.
#[derive(Debug, Clone, PartialEq)]
pub struct FileLogProvider {
    pub path: String,
    /// `None`: Istio's text line, or for the built-in `envoy` the mesh's format.
    pub format: Option<LogLine>,
    pub omit_empty_values: bool,
}

impl MeshAccessLog {
    /// The provider called `name`: one of `extensionProviders`, else the built-in `envoy`.
    pub fn provider(&self, name: &str) -> Option<FileLogProvider> {
        if let Some(p) = self.providers.get(name) {
            return Some(p.clone());
        }
        (name == BUILTIN_ENVOY_PROVIDER).then(|| FileLogProvider {
            path: DEV_STDOUT.to_string(),
            format: None,
            omit_empty_values: false,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RawFileProvider {
    #[serde(default)]
    path: String,
    #[serde(default)]
    log_format: Option<RawLogFormat>,
    #[serde(default)]
    omit_empty_values: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogFormat {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    labels: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Reads the mesh-wide settings. `warn` receives (field, why) for what is not applied.
pub(super) fn mesh_wide(
    file: Option<String>,
    encoding: Option<String>,
    format: Option<String>,
    warn: &mut dyn FnMut(String, &str),
) -> Result<(Option<String>, Option<LogLine>), String> {
    if let Some(path) = file.as_deref() {
        warn_path("accessLogFile", path, warn);
    }
    let json = match encoding.as_deref() {
        None | Some("TEXT") => false,
        Some("JSON") => true,
        Some(other) => return Err(format!("accessLogEncoding: {other:?} is not TEXT or JSON")),
    };
    let format = format.filter(|f| !f.is_empty());
    let line = match (json, format) {
        (false, None) if encoding.is_none() => None,
        (false, None) => Some(LogLine::IstioText),
        (false, Some(text)) => Some(LogLine::Text(with_newline(text))),
        (true, None) => Some(LogLine::IstioJson),
        (true, Some(text)) => Some(LogLine::Json(json_object("accessLogFormat", &text)?)),
    };
    Ok((file, line))
}

/// Reads one `envoyFileAccessLog` provider at `field`.
pub(super) fn file_provider(
    field: &str,
    raw: RawFileProvider,
    warn: &mut dyn FnMut(String, &str),
) -> Result<FileLogProvider, String> {
    let path = if raw.path.is_empty() {
        DEV_STDOUT.to_string()
    } else {
        raw.path
    };
    warn_path(&format!("{field}.envoyFileAccessLog.path"), &path, warn);
    let format = match raw.log_format {
        None => None,
        Some(RawLogFormat {
            text: Some(_),
            labels: Some(_),
        }) => {
            return Err(format!(
                "{field}.envoyFileAccessLog.logFormat: set text or labels, not both"
            ))
        }
        Some(RawLogFormat {
            text: Some(text), ..
        }) if !text.is_empty() => Some(LogLine::Text(with_newline(text))),
        Some(RawLogFormat {
            labels: Some(labels),
            ..
        }) if !labels.is_empty() => {
            let at = format!("{field}.envoyFileAccessLog.logFormat.labels");
            check_json(&at, &labels)?;
            Some(LogLine::Json(labels))
        }
        Some(RawLogFormat {
            labels: Some(_), ..
        }) => Some(LogLine::IstioJson),
        Some(_) => Some(LogLine::IstioText),
    };
    Ok(FileLogProvider {
        path,
        format,
        omit_empty_values: raw.omit_empty_values,
    })
}

fn warn_path(field: &str, path: &str, warn: &mut dyn FnMut(String, &str)) {
    if !path.is_empty() && path != DEV_STDOUT {
        warn(
            format!("{field} {path:?}"),
            "weft-proxy writes access logs to its standard output only; the lines go to /dev/stdout",
        );
    }
}

/// Istio adds the newline a format string lacks.
fn with_newline(mut text: String) -> String {
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

fn json_object(
    field: &str,
    text: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("{field}: with accessLogEncoding JSON, not a JSON object: {e}"))?;
    let serde_json::Value::Object(map) = value else {
        return Err(format!(
            "{field}: with accessLogEncoding JSON, must be a JSON object of keys to format strings"
        ));
    };
    check_json(field, &map)?;
    Ok(map)
}

/// Envoy's JSON formats take strings, numbers, booleans, nulls and nested objects; lists are
/// refused by weft-proxy, so they are refused here, naming the key.
fn check_json(field: &str, map: &serde_json::Map<String, serde_json::Value>) -> Result<(), String> {
    for (key, value) in map {
        match value {
            serde_json::Value::Array(_) => {
                return Err(format!(
                    "{field}.{key}: a list is not a format value (use a string or an object)"
                ))
            }
            serde_json::Value::Object(inner) => check_json(&format!("{field}.{key}"), inner)?,
            _ => {}
        }
    }
    if map.is_empty() {
        return Err(format!("{field}: an empty object logs nothing"));
    }
    Ok(())
}

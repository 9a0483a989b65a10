//! Istio's MeshConfig, read from the YAML file given to `weftd --mesh-config`: the tracing
//! providers (`extensionProviders`), which one is the default (`defaultProviders.tracing`), the
//! default sampling percentage (`defaultConfig.tracing.sampling`), the root namespace whose
//! Telemetry resources are mesh-wide, and where sidecars send traffic for destinations outside
//! the registry (`outboundTrafficPolicy.mode`: ALLOW_ANY, the default, or REGISTRY_ONLY), and
//! the access logs: `accessLogFile`, `accessLogEncoding`, `accessLogFormat`, the
//! `envoyFileAccessLog` providers and `defaultProviders.accessLogging` (see [`access_log`]).
//!
//! Everything else a MeshConfig may hold is accepted and reported as not applied, so an
//! operator copying istiod's file sees what weft ignores. Only `opentelemetry` providers are
//! supported for tracing and `envoyFileAccessLog` ones for access logs; a provider of another
//! kind is reported and cannot be used.

pub mod access_log;

pub use access_log::{FileLogProvider, LogLine, MeshAccessLog};

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Istio's default `defaultConfig.tracing.sampling`: 1 % of new traces.
pub const DEFAULT_SAMPLING: f64 = 1.0;
/// Istio's default `rootNamespace`.
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";

#[derive(Debug, thiserror::Error)]
pub enum MeshConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// The parts of MeshConfig weft acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshConfig {
    pub root_namespace: String,
    /// By name; only OpenTelemetry ones.
    pub tracing_providers: BTreeMap<String, OtelProvider>,
    /// `defaultProviders.tracing[0]`.
    pub default_tracing_provider: Option<String>,
    /// `defaultConfig.tracing.sampling`, a percentage.
    pub default_sampling: f64,
    /// `enableTracing` (default true): false turns tracing off whatever else says.
    pub enable_tracing: bool,
    /// `outboundTrafficPolicy.mode`: where a sidecar sends traffic for destinations the
    /// registry does not know.
    pub outbound_traffic_policy: OutboundTrafficPolicy,
    /// `accessLogFile`, `accessLogEncoding`, `accessLogFormat` and the access log providers.
    pub access_log: MeshAccessLog,
}

/// Istio's `outboundTrafficPolicy.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum OutboundTrafficPolicy {
    /// Unknown destinations are reached as addressed (`PassthroughCluster`): Istio's default.
    #[default]
    AllowAny,
    /// Only the registry's services are reachable; anything else goes to `BlackHoleCluster`.
    RegistryOnly,
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            root_namespace: DEFAULT_ROOT_NAMESPACE.to_string(),
            tracing_providers: BTreeMap::new(),
            default_tracing_provider: None,
            default_sampling: DEFAULT_SAMPLING,
            enable_tracing: true,
            outbound_traffic_policy: OutboundTrafficPolicy::AllowAny,
            access_log: MeshAccessLog::default(),
        }
    }
}

/// `extensionProviders[].opentelemetry`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OtelProvider {
    /// `[namespace/]host`: a service of the mesh, or any host name or IP address.
    pub service: String,
    pub port: u32,
    #[serde(default)]
    pub max_tag_length: Option<u32>,
}

impl OtelProvider {
    /// The host without Istio's optional `namespace/` prefix.
    pub fn host(&self) -> &str {
        self.service
            .split_once('/')
            .map_or(self.service.as_str(), |(_, h)| h)
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawMeshConfig {
    #[serde(default)]
    root_namespace: Option<String>,
    #[serde(default)]
    enable_tracing: Option<bool>,
    #[serde(default)]
    extension_providers: Vec<RawProvider>,
    #[serde(default)]
    default_providers: RawDefaultProviders,
    #[serde(default)]
    default_config: RawProxyConfig,
    #[serde(default)]
    outbound_traffic_policy: Option<RawOutboundTrafficPolicy>,
    #[serde(default)]
    access_log_file: Option<String>,
    #[serde(default)]
    access_log_encoding: Option<String>,
    #[serde(default)]
    access_log_format: Option<String>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_yaml_ng::Value>,
}

#[derive(Deserialize, Default)]
struct RawOutboundTrafficPolicy {
    #[serde(default)]
    mode: Option<String>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_yaml_ng::Value>,
}

#[derive(Deserialize)]
struct RawProvider {
    name: String,
    #[serde(default)]
    opentelemetry: Option<OtelProvider>,
    #[serde(default, rename = "envoyFileAccessLog")]
    envoy_file_access_log: Option<access_log::RawFileProvider>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_yaml_ng::Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawDefaultProviders {
    #[serde(default)]
    tracing: Vec<String>,
    #[serde(default)]
    access_logging: Vec<String>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_yaml_ng::Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawProxyConfig {
    #[serde(default)]
    tracing: Option<RawTracing>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_yaml_ng::Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawTracing {
    #[serde(default)]
    sampling: Option<f64>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_yaml_ng::Value>,
}

/// A MeshConfig and what in it is not applied (one line per field, naming it).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedMeshConfig {
    pub config: MeshConfig,
    pub warnings: Vec<String>,
}

pub fn load_mesh_config(path: &Path) -> Result<LoadedMeshConfig, MeshConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| MeshConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_mesh_config(path, &text)
}

pub fn parse_mesh_config(path: &Path, text: &str) -> Result<LoadedMeshConfig, MeshConfigError> {
    let invalid = |message: String| MeshConfigError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let raw: RawMeshConfig = if text.trim().is_empty() {
        RawMeshConfig::default()
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| invalid(e.to_string()))?
    };
    let file = path.display();
    let mut warnings = Vec::new();
    let mut not_applied = |field: String, why: &str| {
        warnings.push(format!("{file}: {field}: not applied ({why})"));
    };
    for key in raw.other.keys() {
        not_applied(key.clone(), "weft does not read this MeshConfig field");
    }
    for key in raw.default_providers.other.keys() {
        not_applied(
            format!("defaultProviders.{key}"),
            "only tracing and accessLogging providers are read",
        );
    }
    let (access_log_file, access_log_format) = access_log::mesh_wide(
        raw.access_log_file,
        raw.access_log_encoding,
        raw.access_log_format,
        &mut not_applied,
    )
    .map_err(invalid)?;
    for key in raw.default_config.other.keys() {
        not_applied(
            format!("defaultConfig.{key}"),
            "only defaultConfig.tracing.sampling is read",
        );
    }
    let tracing = raw.default_config.tracing.unwrap_or_default();
    for key in tracing.other.keys() {
        not_applied(
            format!("defaultConfig.tracing.{key}"),
            "only sampling is read",
        );
    }
    let outbound = raw.outbound_traffic_policy.unwrap_or_default();
    for key in outbound.other.keys() {
        not_applied(
            format!("outboundTrafficPolicy.{key}"),
            "only outboundTrafficPolicy.mode is read",
        );
    }
    let outbound_traffic_policy = match outbound.mode.as_deref() {
        None | Some("ALLOW_ANY") => OutboundTrafficPolicy::AllowAny,
        Some("REGISTRY_ONLY") => OutboundTrafficPolicy::RegistryOnly,
        Some(other) => {
            return Err(invalid(format!(
                "outboundTrafficPolicy.mode: {other:?} is not ALLOW_ANY or REGISTRY_ONLY"
            )))
        }
    };
    let mut tracing_providers = BTreeMap::new();
    let mut log_providers = BTreeMap::new();
    // Providers of kinds weft does not support: named by a default, they are reported, not
    // refused.
    let mut unsupported = Vec::new();
    for (i, p) in raw.extension_providers.into_iter().enumerate() {
        let field = format!("extensionProviders[{i}]");
        if p.name.is_empty() {
            return Err(invalid(format!("{field}.name: a provider needs a name")));
        }
        if tracing_providers.contains_key(&p.name) || log_providers.contains_key(&p.name) {
            return Err(invalid(format!(
                "{field}.name: provider {:?} is defined twice",
                p.name
            )));
        }
        if let Some(file) = p.envoy_file_access_log {
            if p.opentelemetry.is_some() {
                return Err(invalid(format!(
                    "{field}: a provider has one kind, not opentelemetry and envoyFileAccessLog"
                )));
            }
            let provider =
                access_log::file_provider(&field, file, &mut not_applied).map_err(invalid)?;
            for key in p.other.keys() {
                not_applied(format!("{field}.{key}"), "a provider has one kind");
            }
            log_providers.insert(p.name, provider);
            continue;
        }
        match p.opentelemetry {
            Some(otel) => {
                if otel.service.trim().is_empty() {
                    return Err(invalid(format!(
                        "{field}.opentelemetry.service: must not be empty"
                    )));
                }
                if otel.port == 0 || otel.port > 65535 {
                    return Err(invalid(format!(
                        "{field}.opentelemetry.port: {} is not a port",
                        otel.port
                    )));
                }
                if tracing_providers.insert(p.name.clone(), otel).is_some() {
                    return Err(invalid(format!(
                        "{field}.name: provider {:?} is defined twice",
                        p.name
                    )));
                }
                for key in p.other.keys() {
                    not_applied(format!("{field}.{key}"), "a provider has one kind");
                }
            }
            None => {
                let kinds: Vec<&str> = p.other.keys().map(String::as_str).collect();
                not_applied(
                    format!("{field} ({})", p.name),
                    &format!(
                        "provider kind {} is not supported; weft exports traces with \
                         opentelemetry and writes access logs with envoyFileAccessLog only",
                        kinds.join(", ")
                    ),
                );
                unsupported.push(p.name);
            }
        }
    }
    let mut default_providers = raw.default_providers.tracing.into_iter();
    let default_tracing_provider = default_providers.next();
    if default_providers.next().is_some() {
        not_applied(
            "defaultProviders.tracing[1..]".to_string(),
            "one tracing provider is used, the first",
        );
    }
    let default_sampling = tracing.sampling.unwrap_or(DEFAULT_SAMPLING);
    if !(0.0..=100.0).contains(&default_sampling) {
        return Err(invalid(format!(
            "defaultConfig.tracing.sampling: {default_sampling} is not a percentage in [0, 100]"
        )));
    }
    if let Some(name) = &default_tracing_provider {
        if !tracing_providers.contains_key(name) {
            return Err(invalid(format!(
                "defaultProviders.tracing[0]: {name:?} is not an opentelemetry provider of extensionProviders"
            )));
        }
    }
    let mut default_log_providers = Vec::new();
    for (i, name) in raw.default_providers.access_logging.into_iter().enumerate() {
        let field = format!("defaultProviders.accessLogging[{i}]");
        if unsupported.contains(&name) {
            not_applied(
                field,
                &format!("provider {name:?} is of a kind weft does not support"),
            );
        } else if log_providers.contains_key(&name) || name == access_log::BUILTIN_ENVOY_PROVIDER {
            default_log_providers.push(name);
        } else {
            return Err(invalid(format!(
                "{field}: {name:?} is not an access log provider (an envoyFileAccessLog of \
                 extensionProviders, or the built-in envoy)"
            )));
        }
    }
    Ok(LoadedMeshConfig {
        config: MeshConfig {
            root_namespace: raw
                .root_namespace
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| DEFAULT_ROOT_NAMESPACE.to_string()),
            tracing_providers,
            default_tracing_provider,
            default_sampling,
            enable_tracing: raw.enable_tracing.unwrap_or(true),
            outbound_traffic_policy,
            access_log: MeshAccessLog {
                file: access_log_file,
                format: access_log_format,
                providers: log_providers,
                default_providers: default_log_providers,
            },
        },
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LoadedMeshConfig, MeshConfigError> {
        parse_mesh_config(Path::new("mesh.yaml"), text)
    }

    #[test]
    fn reads_providers_default_and_sampling() {
        let m = parse(
            "extensionProviders:\n\
             - name: otel\n  opentelemetry:\n    service: observability/otel-collector.observability.svc.cluster.local\n    port: 4317\n\
             defaultProviders:\n  tracing: [otel]\n\
             defaultConfig:\n  tracing:\n    sampling: 25\n\
             accessLogFile: /dev/stdout\n",
        )
        .unwrap();
        assert_eq!(m.config.default_tracing_provider.as_deref(), Some("otel"));
        assert_eq!(m.config.default_sampling, 25.0);
        let p = &m.config.tracing_providers["otel"];
        assert_eq!(p.host(), "otel-collector.observability.svc.cluster.local");
        assert_eq!(p.port, 4317);
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
        assert_eq!(m.config.access_log.file.as_deref(), Some("/dev/stdout"));
        assert_eq!(m.config.access_log.format, None);
    }

    #[test]
    fn access_log_encoding_and_format_follow_istio() {
        let log = |text: &str| parse(text).unwrap().config.access_log;
        assert_eq!(
            log("accessLogEncoding: TEXT\n").format,
            Some(LogLine::IstioText)
        );
        assert_eq!(
            log("accessLogEncoding: JSON\n").format,
            Some(LogLine::IstioJson)
        );
        // A text format gets the newline Istio adds.
        assert_eq!(
            log("accessLogFormat: '%RESPONSE_CODE% %REQ(X-REQUEST-ID)%'\n").format,
            Some(LogLine::Text(
                "%RESPONSE_CODE% %REQ(X-REQUEST-ID)%\n".to_string()
            ))
        );
        let json = log(
            "accessLogEncoding: JSON\naccessLogFormat: '{\"code\": \"%RESPONSE_CODE%\", \"up\": {\"host\": \"%UPSTREAM_HOST%\"}}'\n",
        );
        let Some(LogLine::Json(map)) = json.format else {
            panic!("{json:?}")
        };
        assert_eq!(map["code"], "%RESPONSE_CODE%");
        assert_eq!(map["up"]["host"], "%UPSTREAM_HOST%");
        // Empty turns the mesh-wide log off; unset leaves it to weftd's flags.
        assert_eq!(log("accessLogFile: ''\n").file.as_deref(), Some(""));
        assert_eq!(log("").file, None);
        assert_eq!(log("").format, None);
    }

    #[test]
    fn access_log_errors_name_the_field() {
        let e = parse("accessLogEncoding: XML\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "mesh.yaml: accessLogEncoding: \"XML\" is not TEXT or JSON"
        );
        let e = parse("accessLogEncoding: JSON\naccessLogFormat: '%RESPONSE_CODE%'\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("mesh.yaml: accessLogFormat: with accessLogEncoding JSON"),
            "{e}"
        );
        let e = parse("accessLogEncoding: JSON\naccessLogFormat: '{\"a\": [\"%PROTOCOL%\"]}'\n")
            .unwrap_err();
        assert!(e.to_string().contains("accessLogFormat.a: a list"), "{e}");
        let e = parse("defaultProviders:\n  accessLogging: [nope]\n").unwrap_err();
        assert!(
            e.to_string().contains(
                "defaultProviders.accessLogging[0]: \"nope\" is not an access log provider"
            ),
            "{e}"
        );
    }

    #[test]
    fn file_access_log_providers_and_defaults() {
        let m = parse(
            "extensionProviders:\n\
             - name: plain\n  envoyFileAccessLog:\n    path: /dev/stdout\n\
             - name: labelled\n  envoyFileAccessLog:\n    logFormat:\n      labels:\n        code: '%RESPONSE_CODE%'\n\
             - name: elsewhere\n  envoyFileAccessLog:\n    path: /var/log/access.log\n    logFormat:\n      text: '%PROTOCOL%'\n\
             - name: als\n  envoyHttpAls:\n    service: als\n    port: 9000\n\
             defaultProviders:\n  accessLogging: [envoy, plain, als]\n",
        )
        .unwrap();
        let log = &m.config.access_log;
        assert_eq!(log.default_providers, ["envoy", "plain"]);
        assert_eq!(log.providers["plain"].format, None);
        assert_eq!(log.providers["labelled"].path, "/dev/stdout");
        assert!(matches!(
            log.providers["labelled"].format,
            Some(LogLine::Json(_))
        ));
        assert_eq!(
            log.providers["elsewhere"].format,
            Some(LogLine::Text("%PROTOCOL%\n".to_string()))
        );
        // The built-in provider exists without being declared.
        assert_eq!(
            log.provider("envoy").map(|p| p.path),
            Some("/dev/stdout".to_string())
        );
        assert!(log.provider("als").is_none());
        let joined = m.warnings.join("\n");
        assert!(
            joined.contains("extensionProviders[2].envoyFileAccessLog.path \"/var/log/access.log\": not applied"),
            "{joined}"
        );
        assert!(joined.contains("extensionProviders[3] (als)"), "{joined}");
        assert!(
            joined.contains("defaultProviders.accessLogging[2]: not applied"),
            "{joined}"
        );
    }

    #[test]
    fn defaults_are_istios() {
        let m = parse("").unwrap().config;
        assert_eq!(m, MeshConfig::default());
        assert_eq!(m.default_sampling, 1.0);
        assert_eq!(m.root_namespace, "istio-system");
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let e = parse("defaultProviders:\n  tracing: [nope]\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "mesh.yaml: defaultProviders.tracing[0]: \"nope\" is not an opentelemetry provider of extensionProviders"
        );
        let e = parse(
            "extensionProviders:\n- name: o\n  opentelemetry:\n    service: x\n    port: 0\n",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("extensionProviders[0].opentelemetry.port"),
            "{e}"
        );
        let e = parse("defaultConfig:\n  tracing:\n    sampling: 101\n").unwrap_err();
        assert!(
            e.to_string().contains("defaultConfig.tracing.sampling"),
            "{e}"
        );
        let e = parse("extensionProviders: 3\n").unwrap_err();
        assert!(e.to_string().starts_with("mesh.yaml: "), "{e}");
    }

    #[test]
    fn outbound_traffic_policy_defaults_to_allow_any_and_rejects_unknown_modes() {
        assert_eq!(
            parse("").unwrap().config.outbound_traffic_policy,
            OutboundTrafficPolicy::AllowAny
        );
        let m = parse("outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n").unwrap();
        assert_eq!(
            m.config.outbound_traffic_policy,
            OutboundTrafficPolicy::RegistryOnly
        );
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
        let m =
            parse("outboundTrafficPolicy:\n  mode: ALLOW_ANY\n  egressProxy: {host: x}\n").unwrap();
        assert_eq!(
            m.config.outbound_traffic_policy,
            OutboundTrafficPolicy::AllowAny
        );
        assert!(
            m.warnings[0].contains("outboundTrafficPolicy.egressProxy: not applied"),
            "{:?}",
            m.warnings
        );
        let e = parse("outboundTrafficPolicy:\n  mode: allow_any\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "mesh.yaml: outboundTrafficPolicy.mode: \"allow_any\" is not ALLOW_ANY or REGISTRY_ONLY"
        );
    }

    #[test]
    fn other_provider_kinds_are_reported_not_used() {
        let m = parse(
            "extensionProviders:\n- name: z\n  zipkin:\n    service: zipkin\n    port: 9411\n",
        )
        .unwrap();
        assert!(m.config.tracing_providers.is_empty());
        assert!(
            m.warnings[0].contains("zipkin is not supported"),
            "{:?}",
            m.warnings
        );
    }
}

//! Istio's MeshConfig, read from the YAML file given to `weftd --mesh-config`: the tracing
//! providers (`extensionProviders`), which one is the default (`defaultProviders.tracing`), the
//! default sampling percentage (`defaultConfig.tracing.sampling`), the root namespace whose
//! Telemetry resources are mesh-wide, and where sidecars send traffic for destinations outside
//! the registry (`outboundTrafficPolicy.mode`: ALLOW_ANY, the default, or REGISTRY_ONLY).
//!
//! Everything else a MeshConfig may hold is accepted and reported as not applied, so an
//! operator copying istiod's file sees what weft ignores. Only `opentelemetry` providers are
//! supported; a provider of another kind is reported and cannot be used.

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
    #[serde(flatten)]
    other: BTreeMap<String, serde_yaml_ng::Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawDefaultProviders {
    #[serde(default)]
    tracing: Vec<String>,
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
        let why = match key.as_str() {
            "accessLogFile" | "accessLogEncoding" | "accessLogFormat" => {
                "access logs are set by weftd --access-log-format / --no-access-log"
            }
            _ => "weft does not read this MeshConfig field",
        };
        not_applied(key.clone(), why);
    }
    for key in raw.default_providers.other.keys() {
        not_applied(
            format!("defaultProviders.{key}"),
            "only tracing providers are read",
        );
    }
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
    for (i, p) in raw.extension_providers.into_iter().enumerate() {
        let field = format!("extensionProviders[{i}]");
        if p.name.is_empty() {
            return Err(invalid(format!("{field}.name: a provider needs a name")));
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
                        "provider kind {} is not supported; weft exports traces with opentelemetry only",
                        kinds.join(", ")
                    ),
                );
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
        assert_eq!(m.warnings.len(), 1);
        assert!(
            m.warnings[0].contains("accessLogFile: not applied"),
            "{:?}",
            m.warnings
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

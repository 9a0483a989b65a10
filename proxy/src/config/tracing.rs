//! The connection manager's `tracing` block to what the proxy's tracer acts on.
//!
//! Only Envoy's OpenTelemetry tracer (`envoy.tracers.opentelemetry`) exporting over gRPC is
//! understood: the collector is either a cluster the proxy already knows (`envoy_grpc`, what
//! istiod sends) or a gRPC target URI (`google_grpc`). Every other tracer, and every field of
//! the tracer the proxy would not act on (HTTP export, samplers, resource detectors, verbose
//! span events, upstream spans, credentials, …), is refused by name rather than accepted and
//! ignored. Defaults are Envoy's: 100 % random, client and overall sampling, 256 characters
//! of `http.url`, 1024 buffered spans.

use std::time::Duration;

use http::HeaderName;
use prost::Message;
use xds_protos::pb::envoy::config::core::v3::{grpc_service, GrpcService, TrafficDirection};
use xds_protos::pb::envoy::config::trace::v3::{tracing::http::ConfigType, OpenTelemetryConfig};
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing;
use xds_protos::pb::envoy::r#type::tracing::v3::{custom_tag, CustomTag};
use xds_protos::pb::envoy::r#type::v3::Percent;

use super::error::{duration, AtField, FieldError};

/// The type of `provider.typed_config` for the OpenTelemetry tracer.
pub const OPEN_TELEMETRY_CONFIG: &str =
    "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig";
/// Envoy's default `max_path_tag_length`.
pub const DEFAULT_MAX_PATH_TAG_LENGTH: usize = 256;
/// Envoy's default `max_cache_size` of the OpenTelemetry tracer: spans held before export.
pub const DEFAULT_MAX_CACHE_SIZE: usize = 1024;
/// How long one export may take when the `grpc_service` sets no `timeout`.
pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    pub collector: Collector,
    /// `service_name`: the `service.name` resource attribute of every exported span.
    pub service_name: String,
    /// Percentages in [0, 100].
    pub random_sampling: f64,
    pub client_sampling: f64,
    pub overall_sampling: f64,
    pub max_path_tag_length: usize,
    pub custom_tags: Box<[Tag]>,
    /// From the listener's `traffic_direction`: Envoy names spans `ingress` on inbound
    /// listeners and `egress <host>` elsewhere, unless the route has a decorator.
    pub inbound: bool,
    /// `max_cache_size`: spans queued for export at most; past it spans are dropped.
    pub max_queued_spans: usize,
    /// `grpc_service.timeout`: one export's limit.
    pub export_timeout: Duration,
    /// `set_telemetry_sdk_resource_attributes`.
    pub sdk_resource_attributes: bool,
}

/// Where spans are exported to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Collector {
    /// `envoy_grpc.cluster_name`: a cluster from CDS, resolved from the proxy's cluster state;
    /// `authority` is the export requests' `:authority` (Envoy's default: the cluster name).
    Cluster {
        name: String,
        authority: Option<String>,
    },
    /// `google_grpc.target_uri`, e.g. `127.0.0.1:4317` or `http://collector:4317`.
    Target(String),
}

/// One custom tag, `tag` set to a value known at configuration time or read from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub name: String,
    pub value: TagValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagValue {
    /// A literal, or an environment variable read when the configuration arrived.
    Fixed(String),
    /// A request header; `default` when the header is absent (no tag when both are missing).
    RequestHeader {
        name: HeaderName,
        default: Option<String>,
    },
}

/// The tracing of one connection manager; `None` when it has no `tracing` block or the block
/// names no provider (Envoy then has no tracer to report to).
pub(crate) fn tracing_config(
    tracing: Option<&Tracing>,
    direction: i32,
) -> Result<Option<TracingConfig>, FieldError> {
    let Some(t) = tracing else {
        return Ok(None);
    };
    if t.verbose {
        return Err(FieldError::unsupported("verbose"));
    }
    if t.spawn_upstream_span.as_ref().is_some_and(|b| b.value) {
        return Err(FieldError::unsupported("spawn_upstream_span"));
    }
    let Some(provider) = &t.provider else {
        return Ok(None);
    };
    let otel = open_telemetry_config(provider).at("provider")?;
    let grpc = otel_grpc_service(&otel).at("provider.typed_config")?;
    let max_queued_spans = match &otel.max_cache_size {
        Some(n) if n.value == 0 => {
            return Err(FieldError::new(
                "provider.typed_config.max_cache_size",
                "must be greater than 0",
            ))
        }
        Some(n) => n.value as usize,
        None => DEFAULT_MAX_CACHE_SIZE,
    };
    let custom_tags = t
        .custom_tags
        .iter()
        .enumerate()
        .map(|(i, tag)| custom_tag(tag).at_index("custom_tags", i))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    Ok(Some(TracingConfig {
        collector: grpc.collector,
        service_name: otel.service_name.clone(),
        random_sampling: percent(t.random_sampling.as_ref()).at("random_sampling")?,
        client_sampling: percent(t.client_sampling.as_ref()).at("client_sampling")?,
        overall_sampling: percent(t.overall_sampling.as_ref()).at("overall_sampling")?,
        max_path_tag_length: t
            .max_path_tag_length
            .as_ref()
            .map_or(DEFAULT_MAX_PATH_TAG_LENGTH, |n| n.value as usize),
        custom_tags,
        inbound: direction == TrafficDirection::Inbound as i32,
        max_queued_spans,
        export_timeout: grpc.timeout,
        sdk_resource_attributes: otel
            .set_telemetry_sdk_resource_attributes
            .as_ref()
            .is_some_and(|b| b.value),
    }))
}

fn open_telemetry_config(
    provider: &xds_protos::pb::envoy::config::trace::v3::tracing::Http,
) -> Result<OpenTelemetryConfig, FieldError> {
    let Some(ConfigType::TypedConfig(any)) = &provider.config_type else {
        return Err(FieldError::new("typed_config", "required"));
    };
    if any.type_url != OPEN_TELEMETRY_CONFIG {
        return Err(FieldError::new(
            "typed_config",
            format!(
                "tracer {} ({}) is not supported; only envoy.tracers.opentelemetry",
                provider.name, any.type_url
            ),
        ));
    }
    OpenTelemetryConfig::decode(any.value.as_slice())
        .map_err(|e| FieldError::new("typed_config", format!("cannot decode: {e}")))
}

struct GrpcTarget {
    collector: Collector,
    timeout: Duration,
}

fn otel_grpc_service(otel: &OpenTelemetryConfig) -> Result<GrpcTarget, FieldError> {
    for (set, field) in [
        (otel.http_service.is_some(), "http_service"),
        (otel.exporter.is_some(), "exporter"),
        (!otel.resource_detectors.is_empty(), "resource_detectors"),
        (otel.sampler.is_some(), "sampler"),
    ] {
        if set {
            return Err(FieldError::unsupported(field));
        }
    }
    let grpc = otel
        .grpc_service
        .as_ref()
        .ok_or_else(|| FieldError::new("grpc_service", "required (only gRPC export)"))?;
    grpc_target(grpc).at("grpc_service")
}

fn grpc_target(g: &GrpcService) -> Result<GrpcTarget, FieldError> {
    if !g.initial_metadata.is_empty() {
        return Err(FieldError::unsupported("initial_metadata"));
    }
    if g.retry_policy.is_some() {
        return Err(FieldError::unsupported("retry_policy"));
    }
    let timeout = match &g.timeout {
        Some(d) => duration(d).at("timeout")?,
        None => DEFAULT_EXPORT_TIMEOUT,
    };
    // Envoy reads a zero timeout as "none"; every wait here is bounded, so the default applies.
    let timeout = if timeout.is_zero() {
        DEFAULT_EXPORT_TIMEOUT
    } else {
        timeout
    };
    let collector = match &g.target_specifier {
        Some(grpc_service::TargetSpecifier::EnvoyGrpc(e)) => {
            for (set, field) in [
                (e.retry_policy.is_some(), "envoy_grpc.retry_policy"),
                (
                    e.max_receive_message_length.is_some(),
                    "envoy_grpc.max_receive_message_length",
                ),
                (e.skip_envoy_headers, "envoy_grpc.skip_envoy_headers"),
            ] {
                if set {
                    return Err(FieldError::unsupported(field));
                }
            }
            if e.cluster_name.is_empty() {
                return Err(FieldError::new(
                    "envoy_grpc.cluster_name",
                    "must not be empty",
                ));
            }
            let authority = Some(e.authority.clone()).filter(|a| !a.is_empty());
            if let Some(a) = &authority {
                if a.parse::<http::uri::Authority>().is_err() {
                    return Err(FieldError::new(
                        "envoy_grpc.authority",
                        format!("{a:?} is not an authority"),
                    ));
                }
            }
            Collector::Cluster {
                name: e.cluster_name.clone(),
                authority,
            }
        }
        Some(grpc_service::TargetSpecifier::GoogleGrpc(gg)) => {
            for (set, field) in [
                (
                    gg.channel_credentials.is_some(),
                    "google_grpc.channel_credentials",
                ),
                (
                    !gg.channel_credentials_plugin.is_empty(),
                    "google_grpc.channel_credentials_plugin",
                ),
                (
                    !gg.call_credentials.is_empty(),
                    "google_grpc.call_credentials",
                ),
                (
                    !gg.call_credentials_plugin.is_empty(),
                    "google_grpc.call_credentials_plugin",
                ),
                (
                    !gg.credentials_factory_name.is_empty(),
                    "google_grpc.credentials_factory_name",
                ),
                (gg.config.is_some(), "google_grpc.config"),
                (
                    gg.per_stream_buffer_limit_bytes.is_some(),
                    "google_grpc.per_stream_buffer_limit_bytes",
                ),
                (gg.channel_args.is_some(), "google_grpc.channel_args"),
            ] {
                if set {
                    return Err(FieldError::unsupported(field));
                }
            }
            let uri = gg.target_uri.trim();
            if uri.is_empty() {
                return Err(FieldError::new(
                    "google_grpc.target_uri",
                    "must not be empty",
                ));
            }
            let with_scheme = if uri.contains("://") {
                uri.to_string()
            } else {
                format!("http://{uri}")
            };
            if with_scheme.parse::<http::Uri>().is_err() || !with_scheme.starts_with("http://") {
                return Err(FieldError::new(
                    "google_grpc.target_uri",
                    format!("{uri:?} is not host:port or an http:// URI (TLS is not supported)"),
                ));
            }
            Collector::Target(with_scheme)
        }
        None => {
            return Err(FieldError::new(
                "target_specifier",
                "one of envoy_grpc or google_grpc is required",
            ))
        }
    };
    Ok(GrpcTarget { collector, timeout })
}

/// A sampling percentage; absent means Envoy's default of 100 %.
fn percent(p: Option<&Percent>) -> Result<f64, FieldError> {
    match p {
        None => Ok(100.0),
        Some(p) if (0.0..=100.0).contains(&p.value) => Ok(p.value),
        Some(p) => Err(FieldError::new(
            "value",
            format!("{} is not a percentage in [0, 100]", p.value),
        )),
    }
}

/// `None` for an environment tag whose variable is unset and has no default: Envoy adds no tag.
fn custom_tag(tag: &CustomTag) -> Result<Option<Tag>, FieldError> {
    if tag.tag.is_empty() {
        return Err(FieldError::new("tag", "must not be empty"));
    }
    let value = match &tag.r#type {
        Some(custom_tag::Type::Literal(l)) => TagValue::Fixed(l.value.clone()),
        Some(custom_tag::Type::Environment(e)) => {
            if e.name.is_empty() {
                return Err(FieldError::new("environment.name", "must not be empty"));
            }
            match std::env::var(&e.name) {
                Ok(v) => TagValue::Fixed(v),
                Err(_) if !e.default_value.is_empty() => TagValue::Fixed(e.default_value.clone()),
                Err(_) => return Ok(None),
            }
        }
        Some(custom_tag::Type::RequestHeader(h)) => {
            let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| {
                FieldError::new(
                    "request_header.name",
                    format!("{:?} is not a header name", h.name),
                )
            })?;
            TagValue::RequestHeader {
                name,
                default: Some(h.default_value.clone()).filter(|d| !d.is_empty()),
            }
        }
        Some(custom_tag::Type::Metadata(_)) => return Err(FieldError::unsupported("metadata")),
        Some(custom_tag::Type::Value(_)) => return Err(FieldError::unsupported("value")),
        None => {
            return Err(FieldError::new(
                "type",
                "one of literal, environment or request_header is required",
            ))
        }
    };
    Ok(Some(Tag {
        name: tag.tag.clone(),
        value,
    }))
}

#[cfg(test)]
mod tests;

//! A cluster's upstream HTTP protocol (HTTP/1.1 or HTTP/2) and its HTTP/2 client settings,
//! from the `envoy.extensions.upstreams.http.v3.HttpProtocolOptions` extension or the
//! cluster's deprecated `http_protocol_options` / `http2_protocol_options`.
//!
//! Acted on: the protocol of `explicit_http_config`; HTTP/2's `max_concurrent_streams` (the
//! most streams weft-proxy opens on one upstream connection before it opens another, and what
//! it advertises; Envoy's default 2147483647), `initial_stream_window_size` and
//! `initial_connection_window_size` (unset keeps weft-proxy's adaptive flow control, as on the
//! listener side), `hpack_table_size` (the HPACK table the upstream may use towards
//! weft-proxy, Envoy's default 4096) and `connection_keepalive` (a PING every `interval`, the
//! connection closed when one goes unanswered for `timeout`). Every other field that is set is
//! refused by its path: `use_downstream_protocol_config` and `auto_config` (weft-proxy does not
//! choose the protocol per request or by ALPN), HTTP/3, each HTTP/1.1 option (none changes how
//! weft-proxy talks to an upstream) and the extension's upstream filters, retry, hash and
//! mirror policies. The extension's `common_http_protocol_options` go to the caller
//! (see `resilience::connection_options`).

use prost::Message;
use xds_protos::pb::envoy::config::cluster::v3::{cluster::ClusterProtocolSelection, Cluster};
use xds_protos::pb::envoy::config::core::v3::{
    Http1ProtocolOptions, Http2ProtocolOptions, HttpProtocolOptions as CommonHttpOptions,
};
use xds_protos::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options::{explicit_http_config::ProtocolConfig, UpstreamProtocolOptions},
    HttpProtocolOptions,
};
use xds_protos::type_url;

use super::downstream::{
    http2_settings, Http2Keepalive, Http2Limits, DEFAULT_MAX_CONCURRENT_STREAMS,
};
use super::error::{refuse_set, AtField, FieldError};

/// Which HTTP version a cluster's requests go upstream in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamProtocol {
    #[default]
    Http1,
    Http2,
}

/// The key of `typed_extension_protocol_options` that carries the upstream HTTP settings.
pub(crate) const HTTP_PROTOCOL_OPTIONS_KEY: &str =
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Envoy's (and RFC 9113's) default HPACK dynamic table size.
pub const DEFAULT_HPACK_TABLE_SIZE: u32 = 4096;

/// How weft-proxy's HTTP/2 client talks to a cluster's hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamHttp2 {
    /// Streams on one connection; past this (or the host's own, lower, limit) a new
    /// connection is opened. Also advertised in SETTINGS.
    pub max_concurrent_streams: u32,
    /// Explicit windows; `None` keeps adaptive (BDP-based) flow control.
    pub initial_stream_window_size: Option<u32>,
    pub initial_connection_window_size: Option<u32>,
    /// SETTINGS_HEADER_TABLE_SIZE weft-proxy advertises.
    pub hpack_table_size: u32,
    pub keepalive: Option<Http2Keepalive>,
}

impl Default for UpstreamHttp2 {
    fn default() -> Self {
        UpstreamHttp2 {
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            initial_stream_window_size: None,
            initial_connection_window_size: None,
            hpack_table_size: DEFAULT_HPACK_TABLE_SIZE,
            keepalive: None,
        }
    }
}

/// What a cluster says about its upstream HTTP protocol.
#[derive(Debug, Default)]
pub(crate) struct ProtocolOptions {
    pub protocol: UpstreamProtocol,
    /// The extension's `common_http_protocol_options`, which replace the cluster's own.
    pub common: Option<CommonHttpOptions>,
    /// Defaults for an HTTP/1.1 cluster.
    pub http2: UpstreamHttp2,
}

/// The extension wins over the cluster's deprecated fields, as in Envoy; deprecated protocol
/// fields set beside it would be ignored, so they are refused.
#[allow(deprecated)] // The cluster-level protocol fields are deprecated but still sent.
pub(crate) fn protocol_options(c: &Cluster) -> Result<ProtocolOptions, FieldError> {
    if c.protocol_selection != ClusterProtocolSelection::UseConfiguredProtocol as i32 {
        return Err(FieldError::new(
            "protocol_selection",
            "only USE_CONFIGURED_PROTOCOL is supported (weft-proxy does not pick the upstream \
             protocol per request)",
        ));
    }
    let Some(any) = c
        .typed_extension_protocol_options
        .get(HTTP_PROTOCOL_OPTIONS_KEY)
    else {
        return deprecated_fields(c);
    };
    let field = format!("typed_extension_protocol_options[{HTTP_PROTOCOL_OPTIONS_KEY:?}]");
    for (name, set) in [
        ("http_protocol_options", c.http_protocol_options.is_some()),
        ("http2_protocol_options", c.http2_protocol_options.is_some()),
    ] {
        if set {
            return Err(FieldError::new(
                name,
                format!("cannot be combined with {field}, which replaces it"),
            ));
        }
    }
    if any.type_url != type_url::HTTP_PROTOCOL_OPTIONS {
        return Err(FieldError::new(
            field,
            format!(
                "expected {}, got {}",
                type_url::HTTP_PROTOCOL_OPTIONS,
                any.type_url
            ),
        ));
    }
    let options = HttpProtocolOptions::decode(any.value.as_slice())
        .map_err(|e| FieldError::new(field.as_str(), format!("cannot decode: {e}")))?;
    let mut out = extension(&options).map_err(|e| e.under(&field))?;
    out.common = options.common_http_protocol_options;
    Ok(out)
}

#[allow(deprecated)]
fn deprecated_fields(c: &Cluster) -> Result<ProtocolOptions, FieldError> {
    if let Some(h1) = &c.http_protocol_options {
        http1(h1).at("http_protocol_options")?;
    }
    let mut out = ProtocolOptions::default();
    if let Some(h2) = &c.http2_protocol_options {
        out.protocol = UpstreamProtocol::Http2;
        out.http2 = http2(h2).at("http2_protocol_options")?;
    }
    Ok(out)
}

fn extension(o: &HttpProtocolOptions) -> Result<ProtocolOptions, FieldError> {
    let unsupported = [
        (
            "upstream_http_protocol_options",
            o.upstream_http_protocol_options.is_some(),
        ),
        ("http_filters", !o.http_filters.is_empty()),
        (
            "header_validation_config",
            o.header_validation_config.is_some(),
        ),
        ("outlier_detection", o.outlier_detection.is_some()),
        (
            "request_mirror_policies",
            !o.request_mirror_policies.is_empty(),
        ),
        ("hash_policy", !o.hash_policy.is_empty()),
        ("retry_policy", o.retry_policy.is_some()),
    ];
    refuse_set(&unsupported)?;
    let mut out = ProtocolOptions::default();
    match &o.upstream_protocol_options {
        // Envoy requires one; weft-proxy has long read its absence as HTTP/1.1.
        None => {}
        Some(UpstreamProtocolOptions::ExplicitHttpConfig(explicit)) => {
            match &explicit.protocol_config {
                None => {
                    return Err(FieldError::new(
                        "explicit_http_config",
                        "needs http_protocol_options or http2_protocol_options",
                    ))
                }
                Some(ProtocolConfig::HttpProtocolOptions(h1)) => {
                    http1(h1).at("explicit_http_config.http_protocol_options")?
                }
                Some(ProtocolConfig::Http2ProtocolOptions(h2)) => {
                    out.protocol = UpstreamProtocol::Http2;
                    out.http2 = http2(h2).at("explicit_http_config.http2_protocol_options")?;
                }
                Some(ProtocolConfig::Http3ProtocolOptions(_)) => {
                    return Err(FieldError::unsupported(
                        "explicit_http_config.http3_protocol_options",
                    ))
                }
            }
        }
        Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(_)) => {
            return Err(FieldError::new(
                "use_downstream_protocol_config",
                "not supported (weft-proxy does not pick the upstream protocol per request; \
                 use explicit_http_config)",
            ))
        }
        Some(UpstreamProtocolOptions::AutoConfig(_)) => {
            return Err(FieldError::new(
                "auto_config",
                "not supported (weft-proxy does not negotiate the upstream protocol; use \
                 explicit_http_config)",
            ))
        }
    }
    Ok(out)
}

/// HTTP/1.1 options: weft-proxy acts on none of them, so only an empty message is accepted.
#[allow(deprecated)] // `use_balsa_parser` is refused by name too.
fn http1(h1: &Http1ProtocolOptions) -> Result<(), FieldError> {
    let unsupported = [
        ("allow_absolute_url", h1.allow_absolute_url.is_some()),
        ("accept_http_10", h1.accept_http_10),
        (
            "default_host_for_http_10",
            !h1.default_host_for_http_10.is_empty(),
        ),
        ("header_key_format", h1.header_key_format.is_some()),
        ("enable_trailers", h1.enable_trailers),
        ("allow_chunked_length", h1.allow_chunked_length),
        (
            "override_stream_error_on_invalid_http_message",
            h1.override_stream_error_on_invalid_http_message.is_some(),
        ),
        ("send_fully_qualified_url", h1.send_fully_qualified_url),
        ("use_balsa_parser", h1.use_balsa_parser.is_some()),
        ("allow_custom_methods", h1.allow_custom_methods),
        (
            "ignore_http_11_upgrade",
            !h1.ignore_http_11_upgrade.is_empty(),
        ),
    ];
    refuse_set(&unsupported)
}

/// A cluster's HTTP/2 settings: what the listener side reads too (`http2_settings`), and the
/// HPACK table size weft-proxy advertises.
fn http2(h2: &Http2ProtocolOptions) -> Result<UpstreamHttp2, FieldError> {
    let Http2Limits {
        max_concurrent_streams,
        initial_stream_window_size,
        initial_connection_window_size,
        keepalive,
    } = http2_settings(h2)?;
    Ok(UpstreamHttp2 {
        max_concurrent_streams,
        initial_stream_window_size,
        initial_connection_window_size,
        hpack_table_size: h2
            .hpack_table_size
            .map_or(DEFAULT_HPACK_TABLE_SIZE, |n| n.value),
        keepalive,
    })
}

//! Every top-level field of an `HttpConnectionManager`, and what weft-proxy does with it.
//!
//! The team rule is "refuse rather than pretend": a field weft-proxy does not act on makes the
//! listener's NACK, by name. A field is accepted only when weft-proxy acts on it, or when the
//! value sent means what weft-proxy does anyway (Envoy's default, usually). Proto3 scalars
//! count as set when not zero, wrapper messages when present, enums when not the value whose
//! behaviour weft-proxy has.
//!
//! | field | decision |
//! |---|---|
//! | `codec_type` | `AUTO` only: hyper's auto server serves HTTP/1.1 and HTTP/2 (prior knowledge) on every connection. `HTTP1`, `HTTP2`, `HTTP3` refused |
//! | `stat_prefix` | acted on (`http_connection`, `crate::hcm_stats`) |
//! | `route_config`, `rds` | acted on (`http_connection::route_source`); `scoped_routes` refused |
//! | `http_filters` | acted on (`http_filters`) |
//! | `add_user_agent` | unset or `false` only: weft-proxy never adds `x-envoy-downstream-service-cluster`/`-node` |
//! | `tracing` | acted on (`tracing`) |
//! | `common_http_protocol_options` | acted on in part, the rest refused by name (`downstream`) |
//! | `http1_safe_max_connection_duration` | accepted: it only changes how `max_connection_duration` ends a connection, and that is refused |
//! | `http_protocol_options` | HTTP/1 options: each field at the value weft-proxy (hyper) behaves as, else refused (see [`http1_options`]) |
//! | `http2_protocol_options` | acted on in part, the rest refused by name (`downstream`) |
//! | `http3_protocol_options` | refused: weft-proxy serves no HTTP/3 |
//! | `server_name`, `server_header_transformation` | acted on: the `server` response header (`crate::http::headers::finish_response`) |
//! | `scheme_header_transformation` | refused when it transforms anything |
//! | `max_request_headers_kb` | acted on (`downstream`) |
//! | `stream_idle_timeout` | acted on (`http_connection`, `crate::http::plan`) |
//! | `stream_flush_timeout` | refused: there is no flush timer separate from the stream idle timer |
//! | `request_timeout` | refused unless 0 (`downstream`) |
//! | `request_headers_timeout` | acted on (`downstream`) |
//! | `drain_timeout` | refused when set. Unset is accepted with a known difference: hyper's graceful shutdown sends its final GOAWAY one PING round trip after the first, not Envoy's 5s later |
//! | `drain_timeout_jitter` | refused unless 0 |
//! | `delayed_close_timeout` | unset or 0 only. 0 disables the delayed close, and weft-proxy closes as soon as its last response is written; unset (Envoy's 1s of draining reads before the close) is accepted as sent by every control plane, a known difference |
//! | `access_log` | acted on (`access_log`) |
//! | `access_log_flush_interval`, `flush_access_log_on_new_request`, `access_log_options` | refused when set: weft-proxy writes one entry per finished stream |
//! | `use_remote_address` | acted on (`crate::http::headers::forwarding`): `x-forwarded-for`, `x-forwarded-proto`, which requests are internal, the edge's `x-envoy-external-address` and request id |
//! | `xff_num_trusted_hops` | 0 only |
//! | `original_ip_detection_extensions`, `early_header_mutation_extensions` | refused when not empty |
//! | `internal_address_config` | acted on: `cidr_ranges` are the internal addresses (none unless configured, as Envoy 1.40); `unix_sockets` has no effect (weft-proxy listens on no Unix socket) |
//! | `skip_xff_append` | `false` only: with `use_remote_address` weft-proxy always appends the peer to `x-forwarded-for` |
//! | `via` | refused when not empty |
//! | `generate_request_id` | unset or `true` only: weft-proxy always gives a request without one an `x-request-id` (tracing and the access log use it) |
//! | `preserve_external_request_id` | acted on: an edge request's (`use_remote_address: true`, not internal) `x-request-id` is replaced unless it is set |
//! | `always_set_request_id_in_response` | acted on (`crate::http::headers::finish_response`) |
//! | `forward_client_cert_details` | acted on: `x-forwarded-client-cert` is removed from requests, except with `ALWAYS_FORWARD_ONLY`. weft-proxy terminates no TLS (a filter chain's `transport_socket` is refused), and on a connection without a client certificate Envoy removes the header in every other mode and adds none |
//! | `set_current_client_cert_details` | accepted: it only says what goes into the header for a client certificate, and there never is one (see above) |
//! | `forward_client_cert_matcher` | refused |
//! | `proxy_100_continue` | `false` only: hyper answers `Expect: 100-continue` itself, and the header is not forwarded (`crate::http::upstream_request`) |
//! | `represent_ipv4_remote_address_as_ipv4_mapped_ipv6` | `false` only |
//! | `upgrade_configs` | acted on for `websocket` (HTTP/1.1 upgrades proxied by `crate::http::upgrade`; a route's `upgrade_configs` overrides it); other types only disabled, `filters` refused (see [`upgrade_configs`]) |
//! | `normalize_path`, `merge_slashes`, `path_with_escaped_slashes_action` | acted on (`crate::http::headers::prepare_request`, RFC 3986 §6.2.2 normalization), except `UNESCAPE_AND_REDIRECT` (refused) |
//! | `path_normalization_options` | refused |
//! | `request_id_extension` | the UUID extension with `pack_trace_reason: false` only (see [`request_id_extension`]) |
//! | `local_reply_config` | refused when it maps or formats anything |
//! | `strip_matching_host_port`, `strip_any_host_port` | acted on (`crate::http::headers::prepare_request`) |
//! | `stream_error_on_invalid_http_message` | unset or `false` only: hyper answers an invalid HTTP/1 message and closes the connection |
//! | `strip_trailing_host_dot` | `false` only |
//! | `proxy_status_config` | refused |
//! | `typed_header_validation_config` | refused |
//! | `append_x_forwarded_port` | `false` only |
//! | `append_local_overload` | `false` only: weft-proxy has no overload manager |
//! | `add_proxy_protocol_connection_state` | accepted, either value: it only exposes PROXY protocol state, and PROXY protocol is refused on listeners |
//! | `forward_proto_config` | refused |

use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderValue;
use prost::Message;
use xds_protos::pb::envoy::config::core::v3::Http1ProtocolOptions;
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{
        CodecType, ForwardClientCertDetails, InternalAddressConfig, PathWithEscapedSlashesAction,
        ServerHeaderTransformation, StripPortMode, UpgradeConfig,
    },
    HttpConnectionManager, LocalReplyConfig, RequestIdExtension,
};
use xds_protos::pb::envoy::extensions::request_id::uuid::v3::UuidRequestIdConfig;

use crate::config::error::{duration, refuse_set, AtField, FieldError};

/// Envoy's `server_name` when none is given.
pub const DEFAULT_SERVER_NAME: &str = "envoy";
const UUID_REQUEST_ID: &str =
    "type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig";

/// What the connection manager does to every request and response head, before the filters
/// and the router see the request and after they made the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadPolicy {
    pub path: PathNormalization,
    pub strip_port: StripPort,
    /// `forward_client_cert_details: ALWAYS_FORWARD_ONLY`; otherwise `x-forwarded-client-cert`
    /// is removed from every request.
    pub forward_client_cert: bool,
    pub server_header: ServerHeader,
    /// `always_set_request_id_in_response`.
    pub request_id_in_response: bool,
    /// `use_remote_address`, `internal_address_config`, `preserve_external_request_id`.
    pub forwarding: Forwarding,
}

/// Who the client is and which requests are internal (`crate::http::headers::forwarding`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forwarding {
    /// `use_remote_address`: the proxy is the edge and appends the peer to `x-forwarded-for`.
    pub use_remote_address: bool,
    /// `internal_address_config.cidr_ranges`; empty: no request is internal.
    pub internal: Arc<[Cidr]>,
    pub preserve_external_request_id: bool,
}

/// An address range: `addr` with its first `prefix` bits significant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl Default for HeadPolicy {
    fn default() -> Self {
        HeadPolicy {
            path: PathNormalization::default(),
            strip_port: StripPort::Keep,
            forward_client_cert: false,
            server_header: ServerHeader::Overwrite(HeaderValue::from_static(DEFAULT_SERVER_NAME)),
            request_id_in_response: false,
            forwarding: Forwarding::default(),
        }
    }
}

/// `normalize_path`, `merge_slashes` and `path_with_escaped_slashes_action`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathNormalization {
    /// RFC 3986 §6.2.2: percent-encoding case and unreserved characters, dot segments.
    pub normalize: bool,
    /// Repeated slashes become one.
    pub merge_slashes: bool,
    pub escaped_slashes: EscapedSlashes,
}

impl PathNormalization {
    /// Whether a request's path is left exactly as it came.
    pub fn is_off(&self) -> bool {
        *self == PathNormalization::default()
    }
}

/// What to do with `%2F` and `%5C` in a path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EscapedSlashes {
    /// `KEEP_UNCHANGED` and Envoy's default.
    #[default]
    Keep,
    /// `REJECT_REQUEST`: answered 400.
    Reject,
    /// `UNESCAPE_AND_FORWARD`: decoded to `/` and `\` before the other steps.
    Unescape,
}

/// `strip_matching_host_port` / `strip_any_host_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StripPort {
    Keep,
    /// Only a port equal to the listener's.
    Matching,
    Any,
}

/// `server_name` under `server_header_transformation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerHeader {
    Overwrite(HeaderValue),
    AppendIfAbsent(HeaderValue),
    PassThrough,
}

/// Checks every field not compiled elsewhere; the ones weft-proxy acts on come back as a
/// [`HeadPolicy`].
#[allow(deprecated)] // Deprecated fields are still refused by name when a control plane sends them.
pub(crate) fn head_policy(hcm: &HttpConnectionManager) -> Result<HeadPolicy, FieldError> {
    refuse_set(&[
        (
            "add_user_agent",
            hcm.add_user_agent.is_some_and(|b| b.value),
        ),
        (
            "http3_protocol_options",
            hcm.http3_protocol_options.is_some(),
        ),
        ("stream_flush_timeout", hcm.stream_flush_timeout.is_some()),
        ("drain_timeout", hcm.drain_timeout.is_some()),
        (
            "drain_timeout_jitter",
            hcm.drain_timeout_jitter.is_some_and(|p| p.value != 0.0),
        ),
        (
            "access_log_flush_interval",
            hcm.access_log_flush_interval.is_some(),
        ),
        (
            "flush_access_log_on_new_request",
            hcm.flush_access_log_on_new_request,
        ),
        ("access_log_options", hcm.access_log_options.is_some()),
        ("xff_num_trusted_hops", hcm.xff_num_trusted_hops != 0),
        (
            "original_ip_detection_extensions",
            !hcm.original_ip_detection_extensions.is_empty(),
        ),
        (
            "early_header_mutation_extensions",
            !hcm.early_header_mutation_extensions.is_empty(),
        ),
        ("skip_xff_append", hcm.skip_xff_append),
        ("via", !hcm.via.is_empty()),
        (
            "generate_request_id",
            hcm.generate_request_id.is_some_and(|b| !b.value),
        ),
        (
            "forward_client_cert_matcher",
            hcm.forward_client_cert_matcher.is_some(),
        ),
        ("proxy_100_continue", hcm.proxy_100_continue),
        (
            "represent_ipv4_remote_address_as_ipv4_mapped_ipv6",
            hcm.represent_ipv4_remote_address_as_ipv4_mapped_ipv6,
        ),
        (
            "path_normalization_options",
            hcm.path_normalization_options.is_some(),
        ),
        (
            "stream_error_on_invalid_http_message",
            hcm.stream_error_on_invalid_http_message
                .is_some_and(|b| b.value),
        ),
        ("strip_trailing_host_dot", hcm.strip_trailing_host_dot),
        ("proxy_status_config", hcm.proxy_status_config.is_some()),
        (
            "typed_header_validation_config",
            hcm.typed_header_validation_config.is_some(),
        ),
        ("append_x_forwarded_port", hcm.append_x_forwarded_port),
        ("append_local_overload", hcm.append_local_overload),
        ("forward_proto_config", hcm.forward_proto_config.is_some()),
    ])?;
    codec_type(hcm.codec_type)?;
    let internal = match &hcm.internal_address_config {
        Some(internal) => internal_address_config(internal).at("internal_address_config")?,
        None => Vec::new(),
    };
    if let Some(h1) = &hcm.http_protocol_options {
        http1_options(h1).at("http_protocol_options")?;
    }
    if let Some(s) = &hcm.scheme_header_transformation {
        if s.match_upstream || s.transformation.is_some() {
            return Err(FieldError::unsupported("scheme_header_transformation"));
        }
    }
    if let Some(d) = &hcm.delayed_close_timeout {
        if !duration(d).at("delayed_close_timeout")?.is_zero() {
            return Err(FieldError::new(
                "delayed_close_timeout",
                "only 0 is supported (weft-proxy closes once its last response is written)",
            ));
        }
    }
    if let Some(ext) = &hcm.request_id_extension {
        request_id_extension(ext).at("request_id_extension")?;
    }
    if let Some(l) = &hcm.local_reply_config {
        local_reply_config(l).at("local_reply_config")?;
    }
    Ok(HeadPolicy {
        path: path_normalization(hcm)?,
        strip_port: strip_port(hcm),
        forward_client_cert: forward_client_cert(hcm)?,
        server_header: server_header(hcm)?,
        request_id_in_response: hcm.always_set_request_id_in_response,
        forwarding: Forwarding {
            use_remote_address: hcm.use_remote_address.is_some_and(|b| b.value),
            internal: internal.into(),
            preserve_external_request_id: hcm.preserve_external_request_id,
        },
    })
}

/// The first field of `fields` that is set, refused by name.
fn codec_type(codec: i32) -> Result<(), FieldError> {
    match CodecType::try_from(codec) {
        Ok(CodecType::Auto) => Ok(()),
        Ok(other) => Err(FieldError::new(
            "codec_type",
            format!(
                "{} is not supported (only AUTO: HTTP/1.1 and HTTP/2 on every connection)",
                other.as_str_name()
            ),
        )),
        Err(_) => Err(FieldError::new(
            "codec_type",
            format!("{codec} is not a codec type"),
        )),
    }
}

/// The internal ranges, as given (Envoy 1.40 treats no address as internal without them:
/// checked against it).
fn internal_address_config(c: &InternalAddressConfig) -> Result<Vec<Cidr>, FieldError> {
    c.cidr_ranges
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let at = format!("cidr_ranges[{i}]");
            let addr: IpAddr = r.address_prefix.parse().map_err(|_| {
                FieldError::new(
                    at.clone(),
                    format!("{:?} is not an IP address", r.address_prefix),
                )
            })?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = r.prefix_len.map_or(0, |l| l.value);
            if prefix > max {
                return Err(FieldError::new(
                    format!("{at}.prefix_len"),
                    format!("{prefix} is longer than the address ({max} bits)"),
                ));
            }
            Ok(Cidr {
                addr,
                prefix: prefix as u8,
            })
        })
        .collect()
}

/// The HTTP/1 options, each accepted at the value that describes hyper's server.
#[allow(deprecated)] // `use_balsa_parser` is deprecated but still sent.
pub(crate) fn http1_options(h1: &Http1ProtocolOptions) -> Result<(), FieldError> {
    refuse_set(&[
        // hyper serves absolute-form targets; refusing them is not possible.
        (
            "allow_absolute_url",
            h1.allow_absolute_url.is_some_and(|b| !b.value),
        ),
        (
            "default_host_for_http_10",
            !h1.default_host_for_http_10.is_empty(),
        ),
        ("header_key_format", h1.header_key_format.is_some()),
        ("enable_trailers", h1.enable_trailers),
        ("allow_chunked_length", h1.allow_chunked_length),
        (
            "override_stream_error_on_invalid_http_message",
            h1.override_stream_error_on_invalid_http_message
                .is_some_and(|b| b.value),
        ),
        ("send_fully_qualified_url", h1.send_fully_qualified_url),
        ("allow_custom_methods", h1.allow_custom_methods),
        (
            "ignore_http_11_upgrade",
            !h1.ignore_http_11_upgrade.is_empty(),
        ),
    ])?;
    // `accept_http_10` (either value): hyper answers HTTP/1.0 requests, where Envoy's default
    // answers 426; a known difference, accepted since every control plane sends the default.
    // `use_balsa_parser` (either value) only picks Envoy's own parser.
    Ok(())
}

/// HTTP/1.1 upgrades: `websocket` is proxied (`crate::http::upgrade`), so an entry for it
/// says whether the connection manager allows it (`enabled`, default true) unless a route says
/// otherwise (`RouteAction.upgrade_configs`). Its own filter chain (`filters`) is refused:
/// upgrades run the connection manager's chain. An entry for another upgrade type is accepted
/// only disabled, which means what weft-proxy does with every upgrade not configured (403).
/// `CONNECT` (and WebSocket over HTTP/2, extended CONNECT) is not proxied: enabling it is
/// refused, as is `http2_protocol_options.allow_connect`. A type listed twice is refused, as
/// Envoy refuses it.
///
/// Returns whether the connection manager allows WebSocket upgrades.
pub(crate) fn upgrade_configs(upgrades: &[UpgradeConfig]) -> Result<bool, FieldError> {
    super::super::route_policy::unique_upgrade_types(
        upgrades.iter().map(|u| u.upgrade_type.as_str()),
    )?;
    let mut websocket = false;
    for (i, u) in upgrades.iter().enumerate() {
        let at = |m: String| FieldError::new(format!("upgrade_configs[{i}]"), m);
        let enabled = u.enabled.is_none_or(|b| b.value);
        if u.upgrade_type.eq_ignore_ascii_case(WEBSOCKET) {
            if !u.filters.is_empty() {
                return Err(FieldError::new(
                    format!("upgrade_configs[{i}].filters"),
                    "an upgrade's own filter chain is not supported (upgrades run the \
                     connection manager's filters)",
                ));
            }
            websocket = enabled;
        } else if enabled {
            return Err(at(format!(
                "upgrade {:?} is not supported (only websocket is proxied)",
                u.upgrade_type
            )));
        }
    }
    Ok(websocket)
}

/// The one upgrade type weft-proxy proxies.
pub const WEBSOCKET: &str = "websocket";

/// The UUID extension, without the trace decision packed into the id: weft-proxy generates a
/// plain version 4 UUID and samples at random, which is what `pack_trace_reason: false`
/// means (Istio's setting). `use_request_id_for_trace_sampling` needs a packed id to have any
/// effect, so either value is accepted.
fn request_id_extension(ext: &RequestIdExtension) -> Result<(), FieldError> {
    let Some(any) = &ext.typed_config else {
        return Err(FieldError::new("typed_config", "is required"));
    };
    if any.type_url != UUID_REQUEST_ID {
        return Err(FieldError::new(
            "typed_config",
            format!("{} is not supported", any.type_url),
        ));
    }
    let uuid = UuidRequestIdConfig::decode(any.value.as_slice())
        .map_err(|e| FieldError::new("typed_config", format!("cannot be decoded: {e}")))?;
    if uuid.pack_trace_reason.is_none_or(|b| b.value) {
        return Err(FieldError::new(
            "typed_config.pack_trace_reason",
            "only false is supported (weft-proxy does not pack the trace decision into the id)",
        ));
    }
    Ok(())
}

fn local_reply_config(l: &LocalReplyConfig) -> Result<(), FieldError> {
    refuse_set(&[
        ("mappers", !l.mappers.is_empty()),
        ("body_format", l.body_format.is_some()),
    ])
}

fn path_normalization(hcm: &HttpConnectionManager) -> Result<PathNormalization, FieldError> {
    let escaped_slashes =
        match PathWithEscapedSlashesAction::try_from(hcm.path_with_escaped_slashes_action) {
            Ok(
                PathWithEscapedSlashesAction::ImplementationSpecificDefault
                | PathWithEscapedSlashesAction::KeepUnchanged,
            ) => EscapedSlashes::Keep,
            Ok(PathWithEscapedSlashesAction::RejectRequest) => EscapedSlashes::Reject,
            Ok(PathWithEscapedSlashesAction::UnescapeAndForward) => EscapedSlashes::Unescape,
            Ok(PathWithEscapedSlashesAction::UnescapeAndRedirect) => {
                return Err(FieldError::new(
                    "path_with_escaped_slashes_action",
                    "UNESCAPE_AND_REDIRECT is not supported",
                ))
            }
            Err(_) => {
                return Err(FieldError::new(
                    "path_with_escaped_slashes_action",
                    format!("{} is not an action", hcm.path_with_escaped_slashes_action),
                ))
            }
        };
    Ok(PathNormalization {
        // Envoy's default is false (its runtime key is not read by weft-proxy).
        normalize: hcm.normalize_path.is_some_and(|b| b.value),
        merge_slashes: hcm.merge_slashes,
        escaped_slashes,
    })
}

fn strip_port(hcm: &HttpConnectionManager) -> StripPort {
    match (hcm.strip_matching_host_port, hcm.strip_port_mode) {
        (_, Some(StripPortMode::StripAnyHostPort(true))) => StripPort::Any,
        (true, _) => StripPort::Matching,
        _ => StripPort::Keep,
    }
}

fn forward_client_cert(hcm: &HttpConnectionManager) -> Result<bool, FieldError> {
    match ForwardClientCertDetails::try_from(hcm.forward_client_cert_details) {
        Ok(ForwardClientCertDetails::AlwaysForwardOnly) => Ok(true),
        Ok(_) => Ok(false),
        Err(_) => Err(FieldError::new(
            "forward_client_cert_details",
            format!("{} is not a mode", hcm.forward_client_cert_details),
        )),
    }
}

fn server_header(hcm: &HttpConnectionManager) -> Result<ServerHeader, FieldError> {
    let name = match hcm.server_name.as_str() {
        "" => HeaderValue::from_static(DEFAULT_SERVER_NAME),
        name => HeaderValue::from_str(name)
            .map_err(|_| FieldError::new("server_name", "is not a valid header value"))?,
    };
    match ServerHeaderTransformation::try_from(hcm.server_header_transformation) {
        Ok(ServerHeaderTransformation::Overwrite) => Ok(ServerHeader::Overwrite(name)),
        Ok(ServerHeaderTransformation::AppendIfAbsent) => Ok(ServerHeader::AppendIfAbsent(name)),
        Ok(ServerHeaderTransformation::PassThrough) => Ok(ServerHeader::PassThrough),
        Err(_) => Err(FieldError::new(
            "server_header_transformation",
            format!(
                "{} is not a transformation",
                hcm.server_header_transformation
            ),
        )),
    }
}

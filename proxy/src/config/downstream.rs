//! The HTTP connection manager's downstream limits: header size and count, connection idle
//! and header-read timeouts, and HTTP/2 settings. Semantics and defaults are Envoy's.
//!
//! Only the fields weft-proxy acts on are accepted. In `common_http_protocol_options` and
//! `http2_protocol_options` every other field that is set makes the listener's NACK, by name:
//! an operator who sets `max_connection_duration` must learn that it is not enforced rather
//! than believe it is.

use std::time::Duration;

use xds_protos::pb::envoy::config::core::v3::{
    Http2ProtocolOptions, HttpProtocolOptions, KeepaliveSettings,
};
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;

use super::error::{duration, refuse_set, AtField, FieldError};

/// Envoy's default `max_request_headers_kb`: 60 KiB.
pub const DEFAULT_MAX_REQUEST_HEADERS_KB: u32 = 60;
/// Envoy's upper bound for `max_request_headers_kb`.
const MAX_REQUEST_HEADERS_KB_LIMIT: u32 = 8192;
/// Envoy's default `max_headers_count`.
pub const DEFAULT_MAX_HEADERS_COUNT: u32 = 100;
/// Envoy's default downstream connection `idle_timeout`: one hour.
pub const DEFAULT_DOWNSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Envoy's default (and largest) HTTP/2 `max_concurrent_streams`.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 2_147_483_647;
/// The smallest HTTP/2 flow-control window (RFC 9113 initial value), Envoy's lower bound.
const MIN_WINDOW: u32 = 65_535;

/// What a downstream connection of this listener is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownstreamLimits {
    /// `max_request_headers_kb` in bytes: the request line's path plus every header name and
    /// value. Larger requests are answered 431.
    pub max_request_header_bytes: usize,
    /// `common_http_protocol_options.max_headers_count`. More headers are answered 431.
    pub max_headers_count: usize,
    /// `common_http_protocol_options.idle_timeout`: how long a connection may stay open with no
    /// request in flight. `None` when disabled with 0.
    pub idle_timeout: Option<Duration>,
    /// `request_headers_timeout`: from the first byte of a request's head to its last. `None`
    /// (Envoy's default) when unset or 0.
    pub request_headers_timeout: Option<Duration>,
    pub http2: Http2Limits,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http2Limits {
    pub max_concurrent_streams: u32,
    /// Explicit windows; `None` keeps weft-proxy's adaptive (BDP-based) flow control.
    pub initial_stream_window_size: Option<u32>,
    pub initial_connection_window_size: Option<u32>,
    /// `connection_keepalive`: PING every `interval`, close when one is not answered in
    /// `timeout`.
    pub keepalive: Option<Http2Keepalive>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Keepalive {
    pub interval: Duration,
    pub timeout: Duration,
}

impl Default for DownstreamLimits {
    fn default() -> Self {
        DownstreamLimits {
            max_request_header_bytes: DEFAULT_MAX_REQUEST_HEADERS_KB as usize * 1024,
            max_headers_count: DEFAULT_MAX_HEADERS_COUNT as usize,
            idle_timeout: Some(DEFAULT_DOWNSTREAM_IDLE_TIMEOUT),
            request_headers_timeout: None,
            http2: Http2Limits::default(),
        }
    }
}

impl Default for Http2Limits {
    fn default() -> Self {
        Http2Limits {
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            initial_stream_window_size: None,
            initial_connection_window_size: None,
            keepalive: None,
        }
    }
}

/// The limits an HTTP connection manager sets; field paths in errors are relative to it.
pub(crate) fn downstream_limits(
    hcm: &HttpConnectionManager,
) -> Result<DownstreamLimits, FieldError> {
    let mut out = DownstreamLimits::default();
    if let Some(kb) = hcm.max_request_headers_kb {
        if kb.value == 0 || kb.value > MAX_REQUEST_HEADERS_KB_LIMIT {
            return Err(FieldError::new(
                "max_request_headers_kb",
                format!(
                    "{} is out of range (1..={MAX_REQUEST_HEADERS_KB_LIMIT})",
                    kb.value
                ),
            ));
        }
        out.max_request_header_bytes = kb.value as usize * 1024;
    }
    // Envoy's whole-request timeout (off by default; 0 is off): not enforced, so refused.
    if hcm
        .request_timeout
        .as_ref()
        .is_some_and(|d| d.seconds != 0 || d.nanos != 0)
    {
        return Err(FieldError::unsupported("request_timeout"));
    }
    if let Some(d) = &hcm.request_headers_timeout {
        let d = duration(d).at("request_headers_timeout")?;
        out.request_headers_timeout = (!d.is_zero()).then_some(d);
    }
    if let Some(common) = &hcm.common_http_protocol_options {
        common_options(common, &mut out).at("common_http_protocol_options")?;
    }
    if let Some(h2) = &hcm.http2_protocol_options {
        out.http2 = http2_limits(h2).at("http2_protocol_options")?;
    }
    Ok(out)
}

fn common_options(c: &HttpProtocolOptions, out: &mut DownstreamLimits) -> Result<(), FieldError> {
    let unsupported = [
        (
            "max_connection_duration",
            c.max_connection_duration.is_some(),
        ),
        (
            "max_connection_duration_jitter",
            c.max_connection_duration_jitter.is_some(),
        ),
        (
            "max_response_headers_kb",
            c.max_response_headers_kb.is_some(),
        ),
        ("max_stream_duration", c.max_stream_duration.is_some()),
        (
            "headers_with_underscores_action",
            c.headers_with_underscores_action != 0,
        ),
        (
            "max_requests_per_connection",
            c.max_requests_per_connection.is_some(),
        ),
    ];
    if let Some((field, _)) = unsupported.iter().find(|(_, set)| *set) {
        return Err(FieldError::new(
            *field,
            "not supported on a listener (weft-proxy does not enforce it downstream)",
        ));
    }
    if let Some(d) = &c.idle_timeout {
        let d = duration(d).at("idle_timeout")?;
        out.idle_timeout = (!d.is_zero()).then_some(d);
    }
    if let Some(n) = c.max_headers_count {
        if n.value == 0 {
            return Err(FieldError::new("max_headers_count", "must be at least 1"));
        }
        out.max_headers_count = n.value as usize;
    }
    Ok(())
}

/// A listener's HTTP/2 settings: [`http2_settings`], and its HPACK table size is refused
/// (the server side does not set it).
fn http2_limits(h2: &Http2ProtocolOptions) -> Result<Http2Limits, FieldError> {
    if h2.hpack_table_size.is_some() {
        return Err(FieldError::unsupported("hpack_table_size"));
    }
    http2_settings(h2)
}

/// What both sides, listener and cluster, read of `Http2ProtocolOptions`: streams per
/// connection, windows and keepalive. Every field neither side acts on is refused by name.
#[allow(deprecated)] // Deprecated fields are still refused by name when a control plane sends them.
pub(crate) fn http2_settings(h2: &Http2ProtocolOptions) -> Result<Http2Limits, FieldError> {
    let unsupported = [
        ("allow_connect", h2.allow_connect),
        ("allow_metadata", h2.allow_metadata),
        ("max_outbound_frames", h2.max_outbound_frames.is_some()),
        (
            "max_outbound_control_frames",
            h2.max_outbound_control_frames.is_some(),
        ),
        (
            "max_consecutive_inbound_frames_with_empty_payload",
            h2.max_consecutive_inbound_frames_with_empty_payload
                .is_some(),
        ),
        (
            "max_inbound_priority_frames_per_stream",
            h2.max_inbound_priority_frames_per_stream.is_some(),
        ),
        (
            "max_inbound_window_update_frames_per_data_frame_sent",
            h2.max_inbound_window_update_frames_per_data_frame_sent
                .is_some(),
        ),
        (
            "stream_error_on_invalid_http_messaging",
            h2.stream_error_on_invalid_http_messaging,
        ),
        (
            "override_stream_error_on_invalid_http_message",
            h2.override_stream_error_on_invalid_http_message.is_some(),
        ),
        (
            "custom_settings_parameters",
            !h2.custom_settings_parameters.is_empty(),
        ),
        ("max_metadata_size", h2.max_metadata_size.is_some()),
        (
            "enable_huffman_encoding",
            h2.enable_huffman_encoding.is_some(),
        ),
        (
            "max_header_field_size_kb",
            h2.max_header_field_size_kb.is_some(),
        ),
        ("disallow_obs_text", h2.disallow_obs_text.is_some()),
        ("use_oghttp2_codec", h2.use_oghttp2_codec.is_some()),
        ("stream_reset_burst", h2.stream_reset_burst.is_some()),
        ("stream_reset_rate", h2.stream_reset_rate.is_some()),
    ];
    refuse_set(&unsupported)?;
    let mut out = Http2Limits::default();
    if let Some(n) = h2.max_concurrent_streams {
        if n.value == 0 || n.value > DEFAULT_MAX_CONCURRENT_STREAMS {
            return Err(FieldError::new(
                "max_concurrent_streams",
                format!("{} is out of range (1..=2147483647)", n.value),
            ));
        }
        out.max_concurrent_streams = n.value;
    }
    out.initial_stream_window_size = window(
        h2.initial_stream_window_size.map(|v| v.value),
        "initial_stream_window_size",
    )?;
    out.initial_connection_window_size = window(
        h2.initial_connection_window_size.map(|v| v.value),
        "initial_connection_window_size",
    )?;
    if let Some(k) = &h2.connection_keepalive {
        out.keepalive = keepalive(k).at("connection_keepalive")?;
    }
    Ok(out)
}

fn window(value: Option<u32>, field: &str) -> Result<Option<u32>, FieldError> {
    match value {
        Some(v) if !(MIN_WINDOW..=DEFAULT_MAX_CONCURRENT_STREAMS).contains(&v) => Err(
            FieldError::new(field, format!("{v} is out of range (65535..=2147483647)")),
        ),
        v => Ok(v),
    }
}

/// `None` when `interval` is unset or 0: Envoy sends no interval PINGs then.
fn keepalive(k: &KeepaliveSettings) -> Result<Option<Http2Keepalive>, FieldError> {
    if k.interval_jitter.as_ref().is_some_and(|p| p.value != 0.0) {
        // hyper pings at a fixed interval; a jitter would be accepted and not applied.
        return Err(FieldError::unsupported("interval_jitter"));
    }
    if k.connection_idle_interval.is_some() {
        return Err(FieldError::unsupported("connection_idle_interval"));
    }
    let timeout = match &k.timeout {
        Some(d) => duration(d).at("timeout")?,
        None => return Err(FieldError::new("timeout", "is required")),
    };
    if timeout < Duration::from_millis(1) {
        return Err(FieldError::new("timeout", "must be at least 1ms"));
    }
    let interval = match &k.interval {
        Some(d) => duration(d).at("interval")?,
        None => Duration::ZERO,
    };
    Ok((!interval.is_zero()).then_some(Http2Keepalive { interval, timeout }))
}

//! A request's span: what is captured when it arrives, what is known when it completes, and
//! the OpenTelemetry span data built from both, with Envoy's span name and tag names.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::SystemTime;

use http::{header, HeaderName, HeaderValue, Request, Version};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use super::propagation::{Parent, TRACESTATE};
use crate::config::{EndpointAddress, TagValue, TracingConfig};

static X_ENVOY_DOWNSTREAM_SERVICE_CLUSTER: HeaderName =
    HeaderName::from_static("x-envoy-downstream-service-cluster");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The request's side of the span, captured at arrival.
pub(super) struct SpanStart {
    time: SystemTime,
    name: String,
    /// From an inbound request's `x-envoy-decorator-operation`: wins over the route's.
    operation: Option<String>,
    method: String,
    url: String,
    protocol: &'static str,
    user_agent: String,
    downstream_cluster: String,
    request_id: String,
    peer: SocketAddr,
    tracestate: Option<String>,
    custom_tags: Vec<KeyValue>,
}

/// What is known when the request completes.
pub struct SpanEnd<'a> {
    /// The response status; 0 when there was none.
    pub status: u16,
    /// Envoy's response flags, `-` when none.
    pub response_flags: &'a str,
    pub upstream_cluster: Option<&'a str>,
    pub upstream_address: Option<&'a EndpointAddress>,
    /// The matched route's decorator, which names the span instead of Envoy's default.
    pub operation: Option<&'a str>,
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// The hosts of a cluster in the proxy's current state: where a collector named by its
    /// cluster is found.
    pub collector_hosts: &'a dyn Fn(&str) -> Option<Vec<EndpointAddress>>,
}

impl SpanStart {
    pub(super) fn capture<B>(
        config: &TracingConfig,
        req: &Request<B>,
        authority: &str,
        peer: SocketAddr,
        request_id: &HeaderValue,
        time: SystemTime,
        operation: Option<String>,
    ) -> SpanStart {
        let h = req.headers();
        let text =
            |v: Option<&HeaderValue>| v.and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
        let scheme = h
            .get(&X_FORWARDED_PROTO)
            .and_then(|v| v.to_str().ok())
            .or(req.uri().scheme_str())
            .unwrap_or("http");
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let mut url = format!("{scheme}://{authority}{path}");
        truncate(&mut url, config.max_path_tag_length);
        let name = if config.inbound {
            "ingress".to_string()
        } else {
            format!("egress {authority}")
        };
        let custom_tags = config
            .custom_tags
            .iter()
            .filter_map(|tag| {
                let value = match &tag.value {
                    TagValue::Fixed(v) => v.clone(),
                    TagValue::RequestHeader { name, default } => {
                        match h.get(name).and_then(|v| v.to_str().ok()) {
                            Some(v) => v.to_string(),
                            None => default.clone()?,
                        }
                    }
                };
                Some(KeyValue::new(tag.name.clone(), value))
            })
            .collect();
        SpanStart {
            time,
            name,
            operation,
            method: req.method().as_str().to_string(),
            url,
            protocol: protocol_name(req.version()),
            user_agent: text(h.get(header::USER_AGENT)),
            downstream_cluster: text(h.get(&X_ENVOY_DOWNSTREAM_SERVICE_CLUSTER)),
            request_id: text(Some(request_id)),
            peer,
            tracestate: h
                .get(&TRACESTATE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            custom_tags,
        }
    }
}

/// Cuts a tag at `max` bytes, on a character boundary, as Envoy limits `http.url`.
fn truncate(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut at = max;
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    s.truncate(at);
}

fn protocol_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        _ => "HTTP/?",
    }
}

pub(super) fn span_data(
    config: &TracingConfig,
    node_id: Option<&str>,
    trace_id: u128,
    span_id: u64,
    parent: Option<Parent>,
    start: &SpanStart,
    end: &SpanEnd<'_>,
) -> SpanData {
    let status_code = end.status;
    // Envoy marks a span as an error when there was no response or it was a 5xx.
    let error = status_code == 0 || status_code >= 500;
    let mut attributes = Vec::with_capacity(20 + start.custom_tags.len());
    let mut tag = |k: &'static str, v: String| attributes.push(KeyValue::new(k, v));
    tag("component", "proxy".to_string());
    if let Some(node) = node_id {
        tag("node_id", node.to_string());
    }
    tag("guid:x-request-id", start.request_id.clone());
    tag("http.url", start.url.clone());
    tag("http.method", start.method.clone());
    tag("http.protocol", start.protocol.to_string());
    tag("downstream_cluster", start.downstream_cluster.clone());
    tag("user_agent", start.user_agent.clone());
    tag("peer.address", start.peer.ip().to_string());
    tag("request_size", end.request_bytes.to_string());
    tag("response_size", end.response_bytes.to_string());
    tag("http.status_code", status_code.to_string());
    tag("response_flags", end.response_flags.to_string());
    if let Some(cluster) = end.upstream_cluster {
        tag("upstream_cluster", cluster.to_string());
        tag("upstream_cluster.name", cluster.to_string());
    }
    if let Some(address) = end.upstream_address {
        tag(
            "upstream_address",
            match address {
                EndpointAddress::Socket(s) => s.to_string(),
                EndpointAddress::Dns { host, port } => format!("{host}:{port}"),
            },
        );
    }
    if error {
        tag("error", "true".to_string());
    }
    attributes.extend(start.custom_tags.iter().cloned());
    let trace_state = start
        .tracestate
        .as_deref()
        .filter(|_| parent.is_some())
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(trace_id),
            SpanId::from(span_id),
            TraceFlags::SAMPLED,
            false,
            trace_state,
        ),
        parent_span_id: parent.map_or(SpanId::INVALID, |p| SpanId::from(p.span_id)),
        parent_span_is_remote: parent.is_some(),
        span_kind: if config.inbound {
            SpanKind::Server
        } else {
            SpanKind::Client
        },
        name: Cow::Owned(
            start
                .operation
                .clone()
                .or_else(|| end.operation.map(str::to_string))
                .unwrap_or_else(|| start.name.clone()),
        ),
        start_time: start.time,
        end_time: SystemTime::now().max(start.time),
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: if error {
            Status::error(format!("HTTP status {status_code}"))
        } else {
            Status::Unset
        },
        instrumentation_scope: InstrumentationScope::builder("weft-proxy")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    }
}

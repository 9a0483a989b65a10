//! Listeners: the outbound HTTP proxy listener (`virtualOutbound`) where the local application
//! sends its calls.

use super::clusters::ads_config_source;
use super::endpoints::socket_address;
use super::names::{
    CORS_FILTER, FAULT_FILTER, HTTP_CONNECTION_MANAGER_FILTER, HTTP_PROXY_ROUTE, ROUTER_FILTER,
    VIRTUAL_OUTBOUND,
};
use super::{AccessLogFormat, MeshSnapshot};
use xds_protos::any::pack;
use xds_protos::node::NodeIdentity;
use xds_protos::pb::envoy::config::accesslog::v3::{access_log, AccessLog};
use xds_protos::pb::envoy::config::core::v3::TrafficDirection;
use xds_protos::pb::envoy::config::core::v3::{
    data_source, substitution_format_string, DataSource, SubstitutionFormatString,
};
use xds_protos::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
use xds_protos::pb::envoy::extensions::access_loggers::stream::v3::stdout_access_log;
use xds_protos::pb::envoy::extensions::access_loggers::stream::v3::StdoutAccessLog;
use xds_protos::pb::envoy::extensions::filters::http::cors::v3::Cors;
use xds_protos::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use xds_protos::pb::envoy::extensions::filters::http::router::v3::Router;
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{CodecType, RouteSpecifier},
    http_filter, HttpConnectionManager, HttpFilter, Rds,
};
use xds_protos::pb::google::protobuf::{value, Struct, Value};
use xds_protos::type_url::{CORS, HTTP_CONNECTION_MANAGER, HTTP_FAULT, ROUTER, STDOUT_ACCESS_LOG};

pub fn listeners(mesh: &MeshSnapshot, node: &NodeIdentity) -> Vec<Listener> {
    let Some((host, port)) = node
        .outbound_addr
        .as_deref()
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u32>().ok()?)))
    else {
        return Vec::new();
    };
    vec![outbound_listener(mesh, node, host, port)]
}

fn outbound_listener(mesh: &MeshSnapshot, node: &NodeIdentity, host: &str, port: u32) -> Listener {
    let hcm = outbound_hcm(
        mesh,
        node,
        format!("outbound_{host}_{port}"),
        HTTP_PROXY_ROUTE,
    );
    Listener {
        name: VIRTUAL_OUTBOUND.to_string(),
        traffic_direction: TrafficDirection::Outbound as i32,
        address: Some(socket_address(host, port)),
        filter_chains: vec![FilterChain {
            filters: vec![hcm_filter(&hcm)],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The connection manager of an outbound HTTP listener: routes from RDS (`route_config_name`),
/// the outbound HTTP filters, the proxy's client-side tracing and the access log. Local mode's
/// HTTP proxy listener and a sidecar's per-port listeners share it.
pub(super) fn outbound_hcm(
    mesh: &MeshSnapshot,
    node: &NodeIdentity,
    stat_prefix: String,
    route_config_name: &str,
) -> HttpConnectionManager {
    HttpConnectionManager {
        stat_prefix,
        codec_type: CodecType::Auto as i32,
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: route_config_name.to_string(),
        })),
        http_filters: http_filters(),
        tracing: super::tracing::hcm_tracing(mesh, node),
        access_log: access_log(mesh),
        ..Default::default()
    }
}

/// The access log every connection manager and TCP proxy writes, as weftd was told.
pub(super) fn access_log(mesh: &MeshSnapshot) -> Vec<AccessLog> {
    let Some(format) = mesh.options.access_log else {
        return Vec::new();
    };
    vec![AccessLog {
        name: "envoy.access_loggers.stdout".to_string(),
        config_type: Some(access_log::ConfigType::TypedConfig(pack(
            STDOUT_ACCESS_LOG,
            &stdout_log(format),
        ))),
        ..Default::default()
    }]
}

/// The network filter that runs `hcm`.
pub(super) fn hcm_filter(hcm: &HttpConnectionManager) -> Filter {
    Filter {
        name: HTTP_CONNECTION_MANAGER_FILTER.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(pack(
            HTTP_CONNECTION_MANAGER,
            hcm,
        ))),
    }
}

/// The HTTP filters of the outbound listener, in istiod's order for a sidecar (restricted to
/// those weft uses): fault injection, then CORS, then the router. Fault and CORS are configured
/// empty here and act only on routes whose `typed_per_filter_config` configures them.
pub(super) fn http_filters() -> Vec<HttpFilter> {
    let filter = |name: &str, config| HttpFilter {
        name: name.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    };
    vec![
        filter(FAULT_FILTER, pack(HTTP_FAULT, &HttpFault::default())),
        filter(CORS_FILTER, pack(CORS, &Cors::default())),
        filter(ROUTER_FILTER, pack(ROUTER, &Router::default())),
    ]
}

/// Istio's default text line (what istiod configures for `accessLogFile` without a format).
const ISTIO_TEXT_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% \"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n";

/// Envoy's default text format needs no configuration; Istio's is given inline; JSON names
/// each field with Envoy's command operators, with Istio's keys, so Envoy and weft-proxy
/// write the same lines.
fn stdout_log(format: AccessLogFormat) -> StdoutAccessLog {
    match format {
        AccessLogFormat::Envoy => StdoutAccessLog::default(),
        AccessLogFormat::Istio => StdoutAccessLog {
            access_log_format: Some(stdout_access_log::AccessLogFormat::LogFormat(
                SubstitutionFormatString {
                    format: Some(substitution_format_string::Format::TextFormatSource(
                        DataSource {
                            specifier: Some(data_source::Specifier::InlineString(
                                ISTIO_TEXT_FORMAT.to_string(),
                            )),
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                },
            )),
        },
        AccessLogFormat::Json => {
            let fields = [
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
            ]
            .into_iter()
            .map(|(k, v)| {
                let value = Value {
                    kind: Some(value::Kind::StringValue(v.to_string())),
                };
                (k.to_string(), value)
            })
            .collect();
            StdoutAccessLog {
                access_log_format: Some(stdout_access_log::AccessLogFormat::LogFormat(
                    SubstitutionFormatString {
                        format: Some(substitution_format_string::Format::JsonFormat(Struct {
                            fields,
                        })),
                        ..Default::default()
                    },
                )),
            }
        }
    }
}

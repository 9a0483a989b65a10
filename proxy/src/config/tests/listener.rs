use std::collections::HashMap;

use xds_protos::pb::envoy::config::accesslog::v3::{access_log, AccessLog};
use xds_protos::pb::envoy::config::core::v3::RuntimeFeatureFlag;
use xds_protos::pb::envoy::config::core::v3::{
    data_source, substitution_format_string::Format, DataSource, SubstitutionFormatString,
};
use xds_protos::pb::envoy::config::listener::v3::{
    filter, Filter, FilterChain, Listener, ListenerFilter,
};
use xds_protos::pb::envoy::config::route::v3::{
    route, route_action, route_match::PathSpecifier, Route, RouteAction, RouteConfiguration,
    RouteMatch, VirtualHost,
};
use xds_protos::pb::envoy::extensions::access_loggers::file::v3::{file_access_log, FileAccessLog};
use xds_protos::pb::envoy::extensions::access_loggers::stream::v3::{
    stdout_access_log, StdoutAccessLog,
};
use xds_protos::pb::envoy::extensions::filters::network::connection_limit::v3::ConnectionLimit;
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::RouteSpecifier, HttpConnectionManager, Rds,
};
use xds_protos::pb::envoy::r#type::matcher::v3::RegexMatcher;
use xds_protos::pb::google::protobuf::{
    Any, BoolValue, Duration as ProtoDuration, Struct, UInt64Value,
};
use xds_protos::type_url;

use super::{any, socket};
use crate::config::{
    compile_listener, FormatBody, ListenerConfig, RouteSource, ValidationError,
    HTTP_CONNECTION_MANAGER_NAME,
};

pub(super) fn hcm_filter(hcm: &HttpConnectionManager) -> Filter {
    Filter {
        name: HTTP_CONNECTION_MANAGER_NAME.into(),
        config_type: Some(filter::ConfigType::TypedConfig(any(
            type_url::HTTP_CONNECTION_MANAGER,
            hcm,
        ))),
    }
}

pub(super) fn rds(name: &str) -> HttpConnectionManager {
    HttpConnectionManager {
        stat_prefix: "outbound_0.0.0.0_9080".into(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            route_config_name: name.into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

pub(super) fn listener(chains: Vec<FilterChain>) -> Listener {
    Listener {
        name: "0.0.0.0_9080".into(),
        address: Some(socket("0.0.0.0", 9080)),
        filter_chains: chains,
        ..Default::default()
    }
}

pub(super) fn chain(filters: Vec<Filter>) -> FilterChain {
    FilterChain {
        filters,
        ..Default::default()
    }
}

fn compile(l: &Listener) -> ListenerConfig {
    compile_listener(l).expect("valid listener")
}

fn stdout(format: Option<Format>) -> AccessLog {
    let config = StdoutAccessLog {
        access_log_format: format.map(|f| {
            stdout_access_log::AccessLogFormat::LogFormat(SubstitutionFormatString {
                format: Some(f),
                ..Default::default()
            })
        }),
    };
    AccessLog {
        name: "envoy.access_loggers.stdout".into(),
        config_type: Some(access_log::ConfigType::TypedConfig(any(
            type_url::STDOUT_ACCESS_LOG,
            &config,
        ))),
        ..Default::default()
    }
}

/// The encodings of the listener's loggers, or the NACK.
fn with_logs(logs: Vec<AccessLog>) -> Result<Vec<&'static str>, ValidationError> {
    let hcm = HttpConnectionManager {
        access_log: logs,
        ..rds("80")
    };
    let cfg = compile_listener(&listener(vec![chain(vec![hcm_filter(&hcm)])]))?;
    Ok(cfg
        .only_http()
        .access_log
        .iter()
        .map(|f| match f.body {
            FormatBody::Text(_) => "text",
            FormatBody::Json(_) => "json",
        })
        .collect())
}

fn json_format() -> Format {
    Format::JsonFormat(Struct {
        fields: HashMap::new(),
    })
}

#[test]
fn rds_listener() {
    let cfg = compile(&listener(vec![chain(vec![hcm_filter(&rds("9080"))])]));
    assert_eq!(cfg.name, "0.0.0.0_9080");
    assert_eq!(cfg.address, Some("0.0.0.0:9080".parse().expect("addr")));
    assert!(matches!(&cfg.only_http().route_source, RouteSource::Rds(n) if n == "9080"));
    assert_eq!(cfg.only_http().stat_prefix, "outbound_0.0.0.0_9080");
    assert!(cfg.only_http().access_log.is_empty());
}

#[test]
fn the_hcm_is_found_by_type_under_another_name() {
    let mut renamed = hcm_filter(&rds("80"));
    renamed.name = "hcm".into();
    let l = listener(vec![chain(vec![renamed])]);
    assert!(matches!(&compile(&l).only_http().route_source, RouteSource::Rds(n) if n == "80"));
}

fn tcp_proxy_to(cluster: &str) -> Filter {
    use xds_protos::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
        tcp_proxy::ClusterSpecifier, TcpProxy,
    };
    let tcp = TcpProxy {
        stat_prefix: cluster.into(),
        cluster_specifier: Some(ClusterSpecifier::Cluster(cluster.into())),
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.tcp_proxy".into(),
        config_type: Some(filter::ConfigType::TypedConfig(any(
            type_url::TCP_PROXY,
            &tcp,
        ))),
    }
}

/// A network filter before the terminal one would be skipped (an RBAC filter, a rate limit):
/// refused by name. So are chains that could never be chosen, and listener filters weft-proxy
/// does not run.
#[test]
fn what_would_be_skipped_or_never_chosen_is_refused_by_name() {
    let hcm = || hcm_filter(&rds("80"));
    let rbac = Filter {
        name: "envoy.filters.network.rbac".into(),
        config_type: Some(filter::ConfigType::TypedConfig(Any {
            type_url: "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC".into(),
            value: vec![],
        })),
    };
    let filter_before = listener(vec![chain(vec![rbac.clone(), hcm()])]);
    let err = compile_listener(&filter_before).unwrap_err();
    assert_eq!(err.field, "filter_chains[0].filters[0]");
    assert!(err.reason.contains("envoy.filters.network.rbac"), "{err}");

    let alone = listener(vec![chain(vec![rbac])]);
    let err = compile_listener(&alone).unwrap_err();
    assert_eq!(err.field, "filter_chains[0].filters[0]");

    // Two chains with the same (empty) match: the second could never be used.
    let twins = listener(vec![chain(vec![tcp_proxy_to("a")]), chain(vec![hcm()])]);
    let err = compile_listener(&twins).unwrap_err();
    assert_eq!(err.field, "filter_chains[1].filter_chain_match");

    let mut proxy_protocol = listener(vec![chain(vec![hcm()])]);
    proxy_protocol.listener_filters = vec![ListenerFilter {
        name: "envoy.filters.listener.proxy_protocol".into(),
        ..Default::default()
    }];
    let err = compile_listener(&proxy_protocol).unwrap_err();
    assert_eq!(err.field, "listener_filters[0]");
    assert!(err.reason.contains("proxy_protocol"), "{err}");

    let mut tls = chain(vec![hcm()]);
    tls.transport_socket = Some(Default::default());
    let err = compile_listener(&listener(vec![tls])).unwrap_err();
    assert_eq!(err.field, "filter_chains[0].transport_socket");

    // A lone default chain is served like a lone chain.
    let mut default_only = listener(vec![]);
    default_only.default_filter_chain = Some(chain(vec![hcm()]));
    assert!(
        matches!(&compile(&default_only).only_http().route_source, RouteSource::Rds(n) if n == "80")
    );
}

/// Istio's sidecar layout: `virtualOutbound` hands off by original destination and falls back to
/// a TCP proxy; port listeners do not bind; `virtualInbound` chooses chains by port and by
/// sniffed protocol.
#[test]
fn istios_listener_model_compiles() {
    use xds_protos::pb::envoy::config::listener::v3::FilterChainMatch;
    use xds_protos::pb::google::protobuf::UInt32Value;
    let mut outbound = listener(vec![]);
    outbound.name = "virtualOutbound".into();
    outbound.address = Some(socket("0.0.0.0", 15001));
    outbound.use_original_dst = Some(BoolValue { value: true });
    outbound.default_filter_chain = Some(chain(vec![tcp_proxy_to("PassthroughCluster")]));
    let cfg = compile(&outbound);
    assert!(cfg.use_original_dst && cfg.bind_to_port);
    assert_eq!(cfg.binds(), Some("0.0.0.0:15001".parse().unwrap()));
    assert!(matches!(
        &cfg.chains.default.as_ref().unwrap().action,
        crate::config::ChainAction::Tcp(t) if t.target.clusters()[0].as_ref() == "PassthroughCluster"
    ));

    let mut port = listener(vec![chain(vec![hcm()])]);
    port.bind_to_port = Some(BoolValue { value: false });
    let cfg = compile(&port);
    assert_eq!(cfg.binds(), None, "bind_to_port: false binds nothing");
    assert_eq!(cfg.address, Some("0.0.0.0:9080".parse().unwrap()));

    let by = |port: u32, protocols: &[&str]| FilterChainMatch {
        destination_port: Some(UInt32Value { value: port }),
        application_protocols: protocols.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    };
    let mut http = chain(vec![hcm()]);
    http.filter_chain_match = Some(by(9080, &["http/1.1", "h2c"]));
    let mut tcp = chain(vec![tcp_proxy_to("inbound|9080||")]);
    tcp.filter_chain_match = Some(by(9080, &[]));
    let mut inbound = listener(vec![http, tcp]);
    inbound.name = "virtualInbound".into();
    inbound.listener_filters = ["original_dst", "tls_inspector", "http_inspector"]
        .iter()
        .map(|f| ListenerFilter {
            name: format!("envoy.filters.listener.{f}"),
            ..Default::default()
        })
        .collect();
    inbound.default_filter_chain = Some(chain(vec![tcp_proxy_to("InboundPassthroughClusterIpv4")]));
    let cfg = compile(&inbound);
    assert!(cfg.listener_filters.original_dst_enabled(15006));
    assert!(cfg.listener_filters.http_enabled(9080));
    assert_eq!(cfg.chains.chains.len(), 2);
    assert_eq!(cfg.http_connection_managers().count(), 1);
    fn hcm() -> Filter {
        hcm_filter(&rds("9080"))
    }
}

#[test]
fn listener_without_a_filter_chain_or_filter_is_rejected() {
    let err = compile_listener(&listener(vec![chain(vec![])])).unwrap_err();
    assert_eq!(err.type_url_short, "Listener");
    assert_eq!(err.resource, "0.0.0.0_9080");
    assert_eq!(err.field, "filter_chains[0].filters");
    let err = compile_listener(&listener(vec![])).unwrap_err();
    assert_eq!(err.field, "filter_chains");
}

#[test]
fn undecodable_hcm_is_rejected() {
    let f = Filter {
        name: HTTP_CONNECTION_MANAGER_NAME.into(),
        config_type: Some(filter::ConfigType::TypedConfig(Any {
            type_url: type_url::HTTP_CONNECTION_MANAGER.into(),
            value: vec![0xff, 0xff],
        })),
    };
    let err = compile_listener(&listener(vec![chain(vec![f])])).unwrap_err();
    assert_eq!(err.field, "filter_chains[0].filters[0].typed_config");
}

#[test]
fn rds_needs_a_name_and_some_route_source_is_required() {
    let l = listener(vec![chain(vec![hcm_filter(&rds(""))])]);
    let err = compile_listener(&l).unwrap_err();
    assert_eq!(
        err.field,
        "filter_chains[0].filters[0].typed_config.rds.route_config_name"
    );

    let hcm = HttpConnectionManager::default();
    let err = compile_listener(&listener(vec![chain(vec![hcm_filter(&hcm)])])).unwrap_err();
    assert_eq!(
        err.field,
        "filter_chains[0].filters[0].typed_config.route_specifier"
    );
}

fn inline(rc: RouteConfiguration) -> Listener {
    let hcm = HttpConnectionManager {
        stat_prefix: "inbound".into(),
        route_specifier: Some(RouteSpecifier::RouteConfig(rc)),
        ..Default::default()
    };
    listener(vec![chain(vec![hcm_filter(&hcm)])])
}

fn inline_route(path: PathSpecifier) -> RouteConfiguration {
    RouteConfiguration {
        name: "inbound|9080||".into(),
        virtual_hosts: vec![VirtualHost {
            name: "inbound|http|9080".into(),
            domains: vec!["*".into()],
            routes: vec![Route {
                r#match: Some(RouteMatch {
                    path_specifier: Some(path),
                    ..Default::default()
                }),
                action: Some(route::Action::Route(RouteAction {
                    cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                        "inbound|9080||".into(),
                    )),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn inline_route_config_is_compiled() {
    let cfg = compile(&inline(inline_route(PathSpecifier::Prefix("/".into()))));
    let RouteSource::Inline(table) = &cfg.only_http().route_source else {
        panic!("expected an inline table");
    };
    assert_eq!(table.name, "inbound|9080||");
    assert_eq!(table.virtual_hosts[0].routes.len(), 1);
}

#[test]
fn inline_route_errors_carry_the_listener_path() {
    let bad = inline_route(PathSpecifier::SafeRegex(RegexMatcher {
        regex: "(".into(),
        ..Default::default()
    }));
    let err = compile_listener(&inline(bad)).unwrap_err();
    assert_eq!(
        err.field,
        "filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].match.safe_regex.regex"
    );
    assert!(err.reason.starts_with("invalid regex"), "{}", err.reason);
}

#[test]
fn access_log_format_detection() {
    assert_eq!(with_logs(vec![]), Ok(vec![]));
    assert_eq!(with_logs(vec![stdout(None)]), Ok(vec!["text"]));
    assert_eq!(
        with_logs(vec![stdout(Some(json_format()))]),
        Ok(vec!["json"])
    );
    #[allow(deprecated)]
    let text = Format::TextFormat("%START_TIME%\n".into());
    assert_eq!(with_logs(vec![stdout(Some(text))]), Ok(vec!["text"]));

    // Istio's `accessLogFile: /dev/stdout` is a file logger.
    let file = |path: &str| AccessLog {
        config_type: Some(access_log::ConfigType::TypedConfig(any(
            "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            &FileAccessLog {
                path: path.into(),
                access_log_format: Some(file_access_log::AccessLogFormat::LogFormat(
                    SubstitutionFormatString {
                        format: Some(json_format()),
                        ..Default::default()
                    },
                )),
            },
        ))),
        ..Default::default()
    };
    assert_eq!(with_logs(vec![file("/dev/stdout")]), Ok(vec!["json"]));
    // Every logger writes its own line.
    assert_eq!(
        with_logs(vec![file("/dev/stdout"), stdout(None)]),
        Ok(vec!["json", "text"])
    );
    // A file the proxy would not write is refused, not skipped.
    let err = with_logs(vec![stdout(None), file("/var/log/a.log")]).unwrap_err();
    assert_eq!(
        err.field,
        "filter_chains[0].filters[0].typed_config.access_log[1].typed_config.path"
    );
    assert!(err.reason.contains("/dev/stdout"), "{}", err.reason);
}

#[test]
fn access_log_operators_the_proxy_cannot_fill_are_refused_by_name() {
    let text = |f: &str| {
        Format::TextFormatSource(DataSource {
            specifier: Some(data_source::Specifier::InlineString(f.into())),
            ..Default::default()
        })
    };
    assert_eq!(
        with_logs(vec![stdout(Some(text(
            crate::config::ISTIO_DEFAULT_TEXT_FORMAT
        )))]),
        Ok(vec!["text"])
    );
    let err = with_logs(vec![stdout(Some(text("%UPSTREAM_PEER_SUBJECT%\n")))]).unwrap_err();
    assert_eq!(
        err.field,
        "filter_chains[0].filters[0].typed_config.access_log[0].typed_config.log_format.text_format_source.inline_string"
    );
    assert!(
        err.reason.contains("%UPSTREAM_PEER_SUBJECT%"),
        "{}",
        err.reason
    );
    let filtered = AccessLog {
        filter: Some(Default::default()),
        ..stdout(None)
    };
    let err = with_logs(vec![filtered]).unwrap_err();
    assert!(err.field.ends_with("access_log[0].filter"), "{}", err.field);
    let other = AccessLog {
        config_type: Some(access_log::ConfigType::TypedConfig(Any {
            type_url: "type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig".into(),
            value: vec![],
        })),
        ..Default::default()
    };
    let err = with_logs(vec![other]).unwrap_err();
    assert!(
        err.reason.contains("HttpGrpcAccessLogConfig"),
        "{}",
        err.reason
    );
}

#[test]
fn undecodable_access_log_names_the_entry() {
    let broken = AccessLog {
        config_type: Some(access_log::ConfigType::TypedConfig(Any {
            type_url: type_url::STDOUT_ACCESS_LOG.into(),
            value: vec![0xff],
        })),
        ..Default::default()
    };
    let err = with_logs(vec![stdout(None), broken]).unwrap_err();
    assert_eq!(
        err.field,
        "filter_chains[0].filters[0].typed_config.access_log[1].typed_config"
    );
}

#[test]
fn listener_address_must_be_an_ip() {
    let mut l = listener(vec![chain(vec![hcm_filter(&rds("80"))])]);
    l.address = Some(socket("localhost", 80));
    let err = compile_listener(&l).unwrap_err();
    assert_eq!(err.field, "address.socket_address.address");

    l.address = None;
    assert_eq!(compile(&l).address, None);
}

#[test]
fn stat_prefix_falls_back() {
    let hcm = HttpConnectionManager {
        stat_prefix: String::new(),
        ..rds("80")
    };
    let l = listener(vec![chain(vec![hcm_filter(&hcm)])]);
    assert_eq!(compile(&l).only_http().stat_prefix, "0.0.0.0_9080");
}

mod http_filters {
    use super::*;
    use crate::router::filter_config::HttpFilterKind;
    use xds_protos::pb::envoy::extensions::filters::common::fault::v3::{
        fault_delay::FaultDelaySecifier, FaultDelay,
    };
    use xds_protos::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
    use xds_protos::pb::envoy::extensions::filters::http::router::v3::Router;
    use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        http_filter, HttpFilter,
    };
    use xds_protos::pb::envoy::r#type::v3::FractionalPercent;
    use xds_protos::pb::google::protobuf::Duration as ProtoDuration;

    fn filter(name: &str, type_url_: &str, value: Vec<u8>) -> HttpFilter {
        HttpFilter {
            name: name.into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(Any {
                type_url: type_url_.into(),
                value,
            })),
            ..Default::default()
        }
    }

    fn router() -> HttpFilter {
        filter(
            "envoy.filters.http.router",
            type_url::ROUTER,
            prost::Message::encode_to_vec(&Router::default()),
        )
    }

    fn with_filters(filters: Vec<HttpFilter>) -> Result<ListenerConfig, String> {
        let hcm = HttpConnectionManager {
            http_filters: filters,
            ..rds("http_proxy")
        };
        compile_listener(&listener(vec![chain(vec![hcm_filter(&hcm)])])).map_err(|e| e.to_string())
    }

    #[test]
    fn filters_compile_in_order_with_the_router_last() {
        let fault = HttpFault {
            delay: Some(FaultDelay {
                percentage: Some(FractionalPercent {
                    numerator: 50,
                    denominator: 0,
                }),
                fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(ProtoDuration {
                    seconds: 2,
                    nanos: 0,
                })),
            }),
            ..Default::default()
        };
        let l = with_filters(vec![
            filter(
                "envoy.filters.http.fault",
                type_url::HTTP_FAULT,
                prost::Message::encode_to_vec(&fault),
            ),
            filter("envoy.filters.http.cors", type_url::CORS, vec![]),
            router(),
        ])
        .unwrap();
        let names: Vec<_> = l
            .only_http()
            .http_filters
            .filters
            .iter()
            .map(|f| &*f.name)
            .collect();
        assert_eq!(
            names,
            ["envoy.filters.http.fault", "envoy.filters.http.cors"]
        );
        let HttpFilterKind::Fault(f) = &l.only_http().http_filters.filters[0].kind else {
            panic!("fault expected")
        };
        assert_eq!(f.delay.as_ref().unwrap().duration.as_secs(), 2);
        assert_eq!(f.delay.as_ref().unwrap().fraction.per_million(), 500_000);
    }

    #[test]
    fn a_filter_weft_does_not_implement_is_refused_by_name_unless_optional() {
        let rbac = filter(
            "envoy.filters.http.rbac",
            "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            vec![],
        );
        let err = with_filters(vec![rbac.clone(), router()]).unwrap_err();
        assert!(
            err.contains("http_filters[0].typed_config")
                && err.contains("\"envoy.filters.http.rbac\"")
                && err.contains("not supported"),
            "{err}"
        );
        let optional = HttpFilter {
            is_optional: true,
            ..rbac
        };
        let l = with_filters(vec![optional, router()]).unwrap();
        assert!(l.only_http().http_filters.filters.is_empty());
    }

    #[test]
    fn the_router_must_be_last_and_present() {
        let cors = filter("envoy.filters.http.cors", type_url::CORS, vec![]);
        let err = with_filters(vec![router(), cors.clone()]).unwrap_err();
        assert!(err.contains("must be the last filter"), "{err}");
        let err = with_filters(vec![cors]).unwrap_err();
        assert!(err.contains("no router filter"), "{err}");
        let strict = filter(
            "envoy.filters.http.router",
            type_url::ROUTER,
            prost::Message::encode_to_vec(&Router {
                strict_check_headers: vec!["x-envoy-max-retries".into()],
                ..Default::default()
            }),
        );
        let err = with_filters(vec![strict]).unwrap_err();
        assert!(err.contains("strict_check_headers: not supported"), "{err}");
        // An empty list is the router alone.
        assert!(with_filters(vec![]).is_ok());
    }

    #[test]
    fn stream_idle_timeout_defaults_to_five_minutes_and_zero_disables_it() {
        let l = with_filters(vec![router()]).unwrap();
        assert_eq!(
            l.only_http().stream_idle_timeout,
            Some(std::time::Duration::from_secs(300))
        );
        let hcm = HttpConnectionManager {
            stream_idle_timeout: Some(ProtoDuration::default()),
            ..rds("http_proxy")
        };
        let l = compile(&listener(vec![chain(vec![hcm_filter(&hcm)])]));
        assert_eq!(l.only_http().stream_idle_timeout, None);
    }
}

fn connection_limit_filter(limit: &ConnectionLimit) -> Filter {
    Filter {
        name: "envoy.filters.network.connection_limit".into(),
        config_type: Some(filter::ConfigType::TypedConfig(any(
            crate::config::CONNECTION_LIMIT_TYPE,
            limit,
        ))),
    }
}

fn limit(max: Option<u64>, delay_ms: Option<i32>) -> ConnectionLimit {
    ConnectionLimit {
        stat_prefix: "inbound_9080".into(),
        max_connections: max.map(|value| UInt64Value { value }),
        delay: delay_ms.map(|ms| ProtoDuration {
            seconds: 0,
            nanos: ms * 1_000_000,
        }),
        ..Default::default()
    }
}

/// `connection_limit` is the one network filter accepted before the terminal one, compiled
/// with its settings; bad settings are refused at their field.
#[test]
fn connection_limit_filters_compile_before_the_terminal_filter() {
    let l = compile(&listener(vec![chain(vec![
        connection_limit_filter(&limit(Some(3), Some(250))),
        hcm_filter(&rds("80")),
    ])]));
    let c = &l.chains.chains[0];
    assert_eq!(c.connection_limits.len(), 1);
    let cl = &c.connection_limits[0];
    assert_eq!(cl.stat_prefix, "inbound_9080");
    assert_eq!(cl.max_connections, 3);
    assert_eq!(cl.delay, Some(std::time::Duration::from_millis(250)));
    // A zero delay closes at once, as no delay does.
    let l = compile(&listener(vec![chain(vec![
        connection_limit_filter(&limit(Some(3), Some(0))),
        hcm_filter(&rds("80")),
    ])]));
    assert_eq!(l.chains.chains[0].connection_limits[0].delay, None);

    // Turned off by its runtime flag's default (there is no runtime to override it).
    let mut off = limit(Some(3), None);
    off.runtime_enabled = Some(RuntimeFeatureFlag {
        default_value: Some(BoolValue { value: false }),
        runtime_key: "cl.enabled".into(),
    });
    let l = compile(&listener(vec![chain(vec![
        connection_limit_filter(&off),
        hcm_filter(&rds("80")),
    ])]));
    assert!(l.chains.chains[0].connection_limits.is_empty());

    let refused = |limit: ConnectionLimit| {
        compile_listener(&listener(vec![chain(vec![
            connection_limit_filter(&limit),
            hcm_filter(&rds("80")),
        ])]))
        .unwrap_err()
    };
    let err = refused(limit(None, None));
    assert_eq!(
        err.field,
        "filter_chains[0].filters[0].typed_config.max_connections"
    );
    let err = refused(limit(Some(0), None));
    assert_eq!(
        err.field,
        "filter_chains[0].filters[0].typed_config.max_connections"
    );
    let mut unnamed = limit(Some(1), None);
    unnamed.stat_prefix.clear();
    let err = refused(unnamed);
    assert_eq!(
        err.field,
        "filter_chains[0].filters[0].typed_config.stat_prefix"
    );
    let err = refused(limit(Some(1), Some(-5)));
    assert_eq!(
        err.field,
        "filter_chains[0].filters[0].typed_config.delay.nanos"
    );

    // Alone it is no terminal filter.
    let err = compile_listener(&listener(vec![chain(vec![connection_limit_filter(
        &limit(Some(1), None),
    )])]))
    .unwrap_err();
    assert_eq!(err.field, "filter_chains[0].filters[0]");
}

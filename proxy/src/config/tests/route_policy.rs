//! Route policies: retries, timeouts, mirrors, rewrites, header mutations across levels and
//! per-filter configs, compiled from the protos istiod sends.

use std::collections::HashMap;
use std::time::Duration;

use prost::Message;
use xds_protos::pb::envoy::config::core::v3::{
    HeaderValue as ProtoHeaderValue, HeaderValueOption, RuntimeFractionalPercent,
};
use xds_protos::pb::envoy::config::route::v3::{
    retry_policy::RetryHostPredicate, route, route_action, route_match::PathSpecifier,
    FilterConfig, RetryPolicy, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
};
use xds_protos::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use xds_protos::pb::envoy::extensions::filters::http::fault::v3::{
    fault_abort::ErrorType, FaultAbort, HttpFault,
};
use xds_protos::pb::envoy::r#type::matcher::v3::{
    string_matcher::MatchPattern, RegexMatchAndSubstitute, RegexMatcher, StringMatcher,
};
use xds_protos::pb::envoy::r#type::v3::FractionalPercent;
use xds_protos::pb::google::protobuf::{Any, BoolValue, Duration as ProtoDuration};
use xds_protos::type_url;

use super::any;
use crate::config::compile_route_config;
use crate::router::filter_config::PerFilter;
use crate::router::{AppendAction, PathRewrite, Route as CompiledRoute, RouteTable};

fn secs(s: i64) -> ProtoDuration {
    ProtoDuration {
        seconds: s,
        nanos: 0,
    }
}

fn millis(ms: i32) -> ProtoDuration {
    ProtoDuration {
        seconds: 0,
        nanos: ms * 1_000_000,
    }
}

fn action(f: impl FnOnce(&mut RouteAction)) -> RouteAction {
    let mut ra = RouteAction {
        cluster_specifier: Some(route_action::ClusterSpecifier::Cluster("c".into())),
        ..Default::default()
    };
    f(&mut ra);
    ra
}

fn route_with(ra: RouteAction) -> Route {
    Route {
        name: "r".into(),
        r#match: Some(RouteMatch {
            path_specifier: Some(PathSpecifier::Prefix("/v1/".into())),
            ..Default::default()
        }),
        action: Some(route::Action::Route(ra)),
        ..Default::default()
    }
}

fn table(vh: VirtualHost) -> Result<RouteTable, String> {
    compile_route_config(&RouteConfiguration {
        name: "http_proxy".into(),
        virtual_hosts: vec![vh],
        ..Default::default()
    })
    .map_err(|e| e.to_string())
}

fn vhost(routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        name: "vh".into(),
        domains: vec!["*".into()],
        routes,
        ..Default::default()
    }
}

fn only_route(t: &RouteTable) -> &CompiledRoute {
    &t.virtual_hosts[0].routes[0]
}

use crate::test_fixtures::istio_default_retry;

#[test]
fn istio_default_retry_policy_compiles() {
    let t = table(vhost(vec![route_with(action(|ra| {
        ra.retry_policy = Some(istio_default_retry())
    }))]))
    .unwrap();
    let retry = only_route(&t).policy.retry.as_ref().unwrap();
    assert_eq!(retry.num_retries, 2);
    assert!(retry.avoid_previous_hosts);
    assert_eq!(retry.host_selection_max_attempts, 5);
    assert_eq!(&*retry.retriable_status_codes, &[503]);
    assert_eq!(retry.base_interval, Duration::from_millis(25));
    assert_eq!(retry.max_interval, Duration::from_millis(250));
    assert!(retry.retries_response(503, &Default::default()));
}

#[test]
fn a_virtual_host_retry_policy_applies_to_routes_without_one() {
    let mut vh = vhost(vec![route_with(action(|_| {}))]);
    vh.retry_policy = Some(RetryPolicy {
        retry_on: "5xx".into(),
        per_try_timeout: Some(millis(300)),
        ..Default::default()
    });
    let t = table(vh).unwrap();
    let retry = only_route(&t).policy.retry.as_ref().unwrap();
    assert_eq!(retry.num_retries, 1, "Envoy's default");
    assert_eq!(retry.per_try_timeout, Some(Duration::from_millis(300)));
}

#[test]
fn bad_retry_settings_name_their_field() {
    let err = table(vhost(vec![route_with(action(|ra| {
        ra.retry_policy = Some(RetryPolicy {
            retriable_status_codes: vec![99],
            ..Default::default()
        })
    }))]))
    .unwrap_err();
    assert!(
        err.contains("routes[0].route.retry_policy.retriable_status_codes[0]"),
        "{err}"
    );
    let err = table(vhost(vec![route_with(action(|ra| {
        ra.retry_policy = Some(RetryPolicy {
            retry_host_predicate: vec![RetryHostPredicate {
                name: "envoy.retry_host_predicates.omit_canary_hosts".into(),
                config_type: None,
            }],
            ..Default::default()
        })
    }))]))
    .unwrap_err();
    assert!(err.contains("retry_host_predicate[0]"), "{err}");
}

#[test]
fn timeouts_and_grpc_settings_compile() {
    #[allow(deprecated)]
    let t = table(vhost(vec![route_with(action(|ra| {
        ra.timeout = Some(secs(0));
        ra.idle_timeout = Some(secs(30));
        ra.max_stream_duration = Some(route_action::MaxStreamDuration {
            grpc_timeout_header_max: Some(secs(0)),
            ..Default::default()
        });
    }))]))
    .unwrap();
    let p = &only_route(&t).policy;
    assert_eq!(p.timeout, None, "0 disables the route timeout");
    assert_eq!(p.idle_timeout, Some(Duration::from_secs(30)));
    assert_eq!(
        p.max_stream_duration.grpc_timeout_header_max,
        Some(Duration::ZERO)
    );
}

#[test]
fn mirrors_and_rewrites_compile() {
    let t = table(vhost(vec![route_with(action(|ra| {
        ra.request_mirror_policies = vec![route_action::RequestMirrorPolicy {
            cluster: "shadow".into(),
            runtime_fraction: Some(RuntimeFractionalPercent {
                default_value: Some(FractionalPercent {
                    numerator: 25,
                    denominator: 0,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }];
        ra.prefix_rewrite = "/v2/".into();
        ra.host_rewrite_specifier = Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(
            "ratings.internal".into(),
        ));
    }))]))
    .unwrap();
    let p = &only_route(&t).policy;
    assert_eq!(&*p.mirrors[0].cluster.name, "shadow");
    assert_eq!(p.mirrors[0].fraction.per_million(), 250_000);
    assert!(p.mirrors[0].shadow_suffix);
    assert!(matches!(&p.rewrite.path, Some(PathRewrite::Prefix(p)) if &**p == "/v2/"));
    assert_eq!(p.rewrite.authority.as_ref().unwrap(), "ratings.internal");

    let t = table(vhost(vec![route_with(action(|ra| {
        ra.regex_rewrite = Some(RegexMatchAndSubstitute {
            pattern: Some(RegexMatcher {
                regex: "^/v1/(.*)$".into(),
                ..Default::default()
            }),
            substitution: "/\\1".into(),
        });
    }))]))
    .unwrap();
    assert!(matches!(
        &only_route(&t).policy.rewrite.path,
        Some(PathRewrite::Regex { substitution, .. }) if &**substitution == "/${1}"
    ));
}

fn set(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(ProtoHeaderValue {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        }),
        append_action: 2, // OVERWRITE_IF_EXISTS_OR_ADD
        ..Default::default()
    }
}

#[test]
fn header_mutations_of_every_level_fold_into_the_route_most_specific_first() {
    let mut route = route_with(action(|_| {}));
    route.request_headers_to_add = vec![set("x-level", "route")];
    route.response_headers_to_remove = vec!["server".into()];
    let mut vh = vhost(vec![route]);
    vh.request_headers_to_add = vec![set("x-level", "vhost"), set("x-vhost", "1")];
    let rc = RouteConfiguration {
        name: "http_proxy".into(),
        virtual_hosts: vec![vh],
        request_headers_to_add: vec![set("x-global", "1")],
        ..Default::default()
    };
    let t = compile_route_config(&rc).unwrap();
    let p = &only_route(&t).policy;
    let adds: Vec<_> = p
        .headers
        .request
        .add
        .iter()
        .map(|a| (a.name.as_str(), a.value.to_str().unwrap(), a.action))
        .collect();
    let overwrite = AppendAction::OverwriteIfExistsOrAdd;
    assert_eq!(
        adds,
        [
            ("x-level", "route", overwrite),
            ("x-level", "vhost", overwrite),
            ("x-vhost", "1", overwrite),
            ("x-global", "1", overwrite)
        ]
    );
    assert_eq!(p.headers.response.remove[0], "server");
}

fn per_filter(entries: Vec<(&str, Any)>) -> HashMap<String, Any> {
    entries
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

#[test]
fn per_filter_configs_compile_fault_and_cors() {
    let fault = HttpFault {
        abort: Some(FaultAbort {
            percentage: Some(FractionalPercent {
                numerator: 100,
                denominator: 0,
            }),
            error_type: Some(ErrorType::HttpStatus(418)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let cors = CorsPolicy {
        allow_origin_string_match: vec![StringMatcher {
            match_pattern: Some(MatchPattern::Exact("https://a.example".into())),
            ..Default::default()
        }],
        allow_credentials: Some(BoolValue { value: true }),
        ..Default::default()
    };
    let mut route = route_with(action(|_| {}));
    route.typed_per_filter_config = per_filter(vec![
        (
            "envoy.filters.http.fault",
            any(type_url::HTTP_FAULT, &fault),
        ),
        ("envoy.filters.http.cors", any(type_url::CORS_POLICY, &cors)),
    ]);
    let t = table(vhost(vec![route])).unwrap();
    let filters = &only_route(&t).policy.filters;
    let Some(PerFilter::Fault(f)) = filters.get("envoy.filters.http.fault") else {
        panic!("fault config expected")
    };
    assert!(f.abort.is_some());
    let Some(PerFilter::Cors(c)) = filters.get("envoy.filters.http.cors") else {
        panic!("cors config expected")
    };
    assert!(c.allow_credentials && c.allows(b"https://a.example"));
}

#[test]
fn unknown_per_filter_configs_are_refused_unless_optional() {
    let unknown = Any {
        type_url: "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute".into(),
        value: vec![],
    };
    let mut route = route_with(action(|_| {}));
    route.typed_per_filter_config = per_filter(vec![("envoy.filters.http.rbac", unknown.clone())]);
    let err = table(vhost(vec![route.clone()])).unwrap_err();
    assert!(
        err.contains("typed_per_filter_config[\"envoy.filters.http.rbac\"]")
            && err.contains("not supported"),
        "{err}"
    );
    let optional = FilterConfig {
        config: Some(unknown),
        is_optional: true,
        disabled: false,
    };
    route.typed_per_filter_config = per_filter(vec![(
        "envoy.filters.http.rbac",
        Any {
            type_url: type_url::ROUTE_FILTER_CONFIG.into(),
            value: optional.encode_to_vec(),
        },
    )]);
    let t = table(vhost(vec![route])).unwrap();
    assert!(only_route(&t).policy.filters.is_empty());
}

//! Translation of VirtualService traffic features (retries, timeouts, fault injection,
//! header mutations, rewrites, mirroring, CORS, consistent hashing) and the listener's HTTP
//! filters: Istio YAML in, the exact Envoy protos out, as istiod emits them.

use super::tests::{decode, mesh, node, BOOKINFO};
use super::*;
use crate::model::{ConsistentHashLb, HttpCookie};
use prost::Message;
use std::time::Duration;
use xds_protos::any::unpack;
use xds_protos::pb::envoy::config::core::v3::{
    header_value_option::HeaderAppendAction, HeaderValueOption,
};
use xds_protos::pb::envoy::config::listener::v3::{filter, Listener};
use xds_protos::pb::envoy::config::route::v3::{
    retry_policy, route,
    route_action::{hash_policy::PolicySpecifier, ClusterSpecifier, HostRewriteSpecifier},
    RetryPolicy, Route, RouteAction, RouteConfiguration, VirtualHost,
};
use xds_protos::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use xds_protos::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use xds_protos::pb::envoy::extensions::filters::http::fault::v3::{
    fault_abort::ErrorType, HttpFault,
};
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpConnectionManager,
};
use xds_protos::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
use xds_protos::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use xds_protos::pb::envoy::r#type::v3::{fractional_percent::DenominatorType, FractionalPercent};
use xds_protos::pb::google::protobuf::Duration as PbDuration;
use xds_protos::type_url::{
    CORS, CORS_POLICY, HTTP_CONNECTION_MANAGER, HTTP_FAULT, LISTENER, PREVIOUS_HOSTS_PREDICATE,
    PREVIOUS_PRIORITIES_CONFIG, ROUTE, ROUTER,
};

const REVIEWS: &str = "outbound|9080||reviews.default.svc.cluster.local";
const V1: &str = "outbound|9080|v1|reviews.default.svc.cluster.local";
const V2: &str = "outbound|9080|v2|reviews.default.svc.cluster.local";

/// The routes of the reviews virtual host, with `http` as the VirtualService's http list.
fn reviews_routes(http: &str) -> Vec<Route> {
    let vs = format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews, namespace: default}}\nspec:\n  hosts: [reviews]\n  http:\n{http}"
    );
    routes_of(
        &mesh(&[BOOKINFO, &vs]),
        "reviews.default.svc.cluster.local:9080",
    )
}

/// The routes of one virtual host as a proxy applies them: a forwarding route without its own
/// retry policy gets the virtual host's.
fn routes_of(m: &MeshSnapshot, vhost: &str) -> Vec<Route> {
    let vh = virtual_host(m, vhost);
    let mut routes = vh.routes;
    for r in &mut routes {
        if let Some(route::Action::Route(a)) = &mut r.action {
            a.retry_policy = a.retry_policy.take().or(vh.retry_policy.clone());
        }
    }
    routes
}

fn virtual_host(m: &MeshSnapshot, vhost: &str) -> VirtualHost {
    let r = translate(m, &node("default"));
    let rc: RouteConfiguration = decode(&r, ROUTE, "http_proxy");
    rc.virtual_hosts
        .into_iter()
        .find(|v| v.name == vhost)
        .unwrap_or_else(|| panic!("no virtual host {vhost}"))
}

fn action(r: &Route) -> &RouteAction {
    match &r.action {
        Some(route::Action::Route(a)) => a,
        other => panic!("not a forwarding route: {other:?}"),
    }
}

fn secs(s: i64) -> PbDuration {
    PbDuration {
        seconds: s,
        nanos: 0,
    }
}

fn millis(ms: i32) -> PbDuration {
    PbDuration {
        seconds: 0,
        nanos: ms * 1_000_000,
    }
}

fn fraction(numerator: u32, denominator: DenominatorType) -> FractionalPercent {
    FractionalPercent {
        numerator,
        denominator: denominator as i32,
    }
}

fn istio_default_retries(previous_hosts: bool) -> RetryPolicy {
    RetryPolicy {
        retry_on: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
            .into(),
        num_retries: Some(xds_protos::pb::google::protobuf::UInt32Value { value: 2 }),
        retriable_status_codes: vec![503],
        retry_host_predicate: if previous_hosts {
            vec![retry_policy::RetryHostPredicate {
                name: "envoy.retry_host_predicates.previous_hosts".into(),
                config_type: Some(retry_policy::retry_host_predicate::ConfigType::TypedConfig(
                    xds_protos::any::pack(
                        PREVIOUS_HOSTS_PREDICATE,
                        &xds_protos::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate {},
                    ),
                )),
            }]
        } else {
            Vec::new()
        },
        host_selection_retry_max_attempts: 5,
        ..Default::default()
    }
}

#[test]
fn the_listener_runs_fault_then_cors_then_router() {
    let r = translate(&mesh(&[BOOKINFO]), &node("default"));
    let l: Listener = decode(&r, LISTENER, "virtualOutbound");
    let Some(filter::ConfigType::TypedConfig(any)) = &l.filter_chains[0].filters[0].config_type
    else {
        panic!("hcm config")
    };
    let hcm: HttpConnectionManager = unpack(HTTP_CONNECTION_MANAGER, any).expect("hcm");
    let filters: Vec<(&str, &str, usize)> = hcm
        .http_filters
        .iter()
        .map(|f| {
            let Some(http_filter::ConfigType::TypedConfig(c)) = &f.config_type else {
                panic!("typed config")
            };
            (f.name.as_str(), c.type_url.as_str(), c.value.len())
        })
        .collect();
    assert_eq!(
        filters,
        [
            ("envoy.filters.http.fault", HTTP_FAULT, 0),
            ("envoy.filters.http.cors", CORS, 0),
            ("envoy.filters.http.router", ROUTER, 0),
        ]
    );
}

#[test]
fn default_routes_get_istios_retries_and_no_timeout() {
    let routes = routes_of(&mesh(&[BOOKINFO]), "reviews.default.svc.cluster.local:9080");
    let a = action(&routes[0]);
    assert_eq!(a.retry_policy, Some(istio_default_retries(true)));
    assert_eq!(a.timeout, Some(secs(0)));
    let msd = a.max_stream_duration.as_ref().expect("max_stream_duration");
    assert_eq!(msd.max_stream_duration, Some(secs(0)));
    assert_eq!(msd.grpc_timeout_header_max, Some(secs(0)));
    #[allow(deprecated)]
    let max_grpc_timeout = a.max_grpc_timeout;
    assert_eq!(max_grpc_timeout, None);
    assert!(a.hash_policy.is_empty());
    assert!(routes[0].typed_per_filter_config.is_empty());
}

#[test]
fn a_retry_policy_every_route_shares_is_sent_once_on_the_virtual_host() {
    let shared = "  - match: [{uri: {prefix: /a}}]\n    route: [{destination: {host: reviews, subset: v1}}]\n  - route: [{destination: {host: reviews, subset: v2}}]\n";
    let vs = format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews, namespace: default}}\nspec:\n  hosts: [reviews]\n  http:\n{shared}");
    let vh = virtual_host(
        &mesh(&[BOOKINFO, &vs]),
        "reviews.default.svc.cluster.local:9080",
    );
    assert_eq!(vh.retry_policy, Some(istio_default_retries(true)));
    assert!(vh.routes.iter().all(|r| action(r).retry_policy.is_none()));
    // One route without retries: each keeps its own, so that it does not inherit any.
    let mixed = "  - match: [{uri: {prefix: /none}}]\n    retries: {attempts: 0}\n    route: [{destination: {host: reviews, subset: v1}}]\n  - route: [{destination: {host: reviews, subset: v1}}]\n";
    let vs = vs.replace(shared, mixed);
    let vh = virtual_host(
        &mesh(&[BOOKINFO, &vs]),
        "reviews.default.svc.cluster.local:9080",
    );
    assert_eq!(vh.retry_policy, None);
    assert_eq!(action(&vh.routes[0]).retry_policy, None);
    assert_eq!(
        action(&vh.routes[1]).retry_policy,
        Some(istio_default_retries(true))
    );
}

#[test]
fn routes_without_retries_get_the_default_and_zero_attempts_none() {
    let routes = reviews_routes(
        "  - match: [{uri: {prefix: /none}}]\n    retries: {attempts: 0}\n    route: [{destination: {host: reviews, subset: v1}}]\n  - route: [{destination: {host: reviews, subset: v1}}]\n",
    );
    assert_eq!(
        action(&routes[0]).retry_policy,
        None,
        "attempts 0: no retries"
    );
    assert_eq!(
        action(&routes[1]).retry_policy,
        Some(istio_default_retries(true))
    );
}

#[test]
fn retries_translate_every_field() {
    let routes = reviews_routes(
        r#"  - route: [{destination: {host: reviews, subset: v1}}]
    retries:
      attempts: 3
      perTryTimeout: 250ms
      retryOn: "5xx, gateway-error,503,429,reset"
      retryRemoteLocalities: true
      retryIgnorePreviousHosts: false
      backoff: 40ms
"#,
    );
    let p = action(&routes[0]).retry_policy.clone().expect("policy");
    assert_eq!(p.num_retries.map(|n| n.value), Some(3));
    assert_eq!(p.per_try_timeout, Some(millis(250)));
    assert_eq!(p.retry_on, "5xx,gateway-error,reset,retriable-status-codes");
    assert_eq!(p.retriable_status_codes, [503, 429]);
    assert!(
        p.retry_host_predicate.is_empty(),
        "ignore previous hosts: false"
    );
    assert_eq!(p.host_selection_retry_max_attempts, 5);
    let back_off = p.retry_back_off.expect("back-off");
    assert_eq!(back_off.base_interval, Some(millis(40)));
    assert_eq!(back_off.max_interval, None);
    let priority = p.retry_priority.expect("priority");
    assert_eq!(priority.name, "envoy.retry_priorities.previous_priorities");
    let Some(retry_policy::retry_priority::ConfigType::TypedConfig(any)) = priority.config_type
    else {
        panic!("typed config")
    };
    let cfg: PreviousPrioritiesConfig = unpack(PREVIOUS_PRIORITIES_CONFIG, &any).expect("decode");
    assert_eq!(cfg.update_frequency, 2);
}

#[test]
fn retry_on_with_only_codes_adds_the_condition_and_keeps_defaults_elsewhere() {
    let routes = reviews_routes(
        "  - route: [{destination: {host: reviews, subset: v1}}]\n    retries: {attempts: 1, retryOn: \"503\"}\n",
    );
    let p = action(&routes[0]).retry_policy.clone().expect("policy");
    assert_eq!(p.retry_on, "retriable-status-codes");
    assert_eq!(p.retriable_status_codes, [503]);
    assert_eq!(p.num_retries.map(|n| n.value), Some(1));
    assert_eq!(
        p.retry_host_predicate,
        istio_default_retries(true).retry_host_predicate
    );
    assert_eq!(p.per_try_timeout, None);
    // Without retryOn, Istio's conditions stay.
    let routes = reviews_routes(
        "  - route: [{destination: {host: reviews, subset: v1}}]\n    retries: {attempts: 4}\n",
    );
    let p = action(&routes[0]).retry_policy.clone().expect("policy");
    assert_eq!(
        p,
        RetryPolicy {
            num_retries: Some(xds_protos::pb::google::protobuf::UInt32Value { value: 4 }),
            ..istio_default_retries(true)
        }
    );
}

#[test]
fn parse_retry_on_splits_names_and_known_status_codes() {
    use super::route_policy::parse_retry_on;
    assert_eq!(
        parse_retry_on("gateway-error,,  404 ,599,retriable-4xx"),
        ("gateway-error,599,retriable-4xx".to_string(), vec![404]),
        "599 has no reason phrase, so istiod keeps it as a name"
    );
}

#[test]
fn timeouts_bound_the_route_and_cap_grpc_timeout() {
    let routes = reviews_routes(
        "  - route: [{destination: {host: reviews, subset: v1}}]\n    timeout: 1.5s\n",
    );
    let a = action(&routes[0]);
    assert_eq!(
        a.timeout,
        Some(PbDuration {
            seconds: 1,
            nanos: 500_000_000
        })
    );
    assert_eq!(
        a.max_stream_duration, None,
        "Envoy ignores the route timeout when max_stream_duration is set"
    );
    #[allow(deprecated)]
    let max_grpc_timeout = a.max_grpc_timeout;
    assert_eq!(max_grpc_timeout, a.timeout, "grpc-timeout may shorten it");
}

fn fault_of(r: &Route) -> Option<HttpFault> {
    r.typed_per_filter_config
        .get("envoy.filters.http.fault")
        .map(|any| unpack(HTTP_FAULT, any).expect("fault"))
}

#[test]
fn faults_are_per_route_filter_config_with_istios_fractions() {
    let routes = reviews_routes(
        r#"  - match: [{uri: {prefix: /a}}]
    fault:
      delay: {fixedDelay: 5s, percentage: {value: 12.5}}
      abort: {httpStatus: 418, percentage: {value: 100}}
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /b}}]
    fault:
      delay: {fixedDelay: 2s, percent: 40}
      abort: {grpcStatus: UNAVAILABLE}
    route: [{destination: {host: reviews, subset: v1}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"#,
    );
    let a = fault_of(&routes[0]).expect("fault on /a");
    let delay = a.delay.expect("delay");
    assert_eq!(
        delay.fault_delay_secifier,
        Some(FaultDelaySecifier::FixedDelay(secs(5)))
    );
    assert_eq!(
        delay.percentage,
        Some(fraction(125_000, DenominatorType::Million))
    );
    let abort = a.abort.expect("abort");
    assert_eq!(abort.error_type, Some(ErrorType::HttpStatus(418)));
    assert_eq!(
        abort.percentage,
        Some(fraction(1_000_000, DenominatorType::Million))
    );

    let b = fault_of(&routes[1]).expect("fault on /b");
    assert_eq!(
        b.delay.expect("delay").percentage,
        Some(fraction(40, DenominatorType::Hundred)),
        "the deprecated integer percent is a fraction of a hundred"
    );
    let abort = b.abort.expect("abort");
    assert_eq!(abort.error_type, Some(ErrorType::GrpcStatus(14)));
    assert_eq!(
        abort.percentage, None,
        "no percentage given: as istiod, none set"
    );

    assert_eq!(fault_of(&routes[2]), None);
}

fn header(key: &str, value: &str, action: HeaderAppendAction) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(xds_protos::pb::envoy::config::core::v3::HeaderValue {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        }),
        append_action: action as i32,
        ..Default::default()
    }
}

#[test]
fn header_mutations_go_on_the_route_and_on_weighted_clusters() {
    use HeaderAppendAction::{AppendIfExistsOrAdd as Add, OverwriteIfExistsOrAdd as Set};
    let routes = reviews_routes(
        r#"  - match: [{uri: {prefix: /single}}]
    headers:
      request: {set: {x-b: "1", x-a: "2"}, add: {x-c: "3"}, remove: [x-d]}
      response: {set: {x-e: "4"}, add: {x-f: "5"}, remove: [x-g]}
    route:
    - destination: {host: reviews, subset: v1}
      headers: {request: {set: {x-dest: v1}}, response: {remove: [x-h]}}
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 70
      headers: {request: {add: {x-w: v1}}, response: {set: {x-r: v1}}}
    - destination: {host: reviews, subset: v2}
      weight: 30
"#,
    );
    let single = &routes[0];
    assert_eq!(
        single.request_headers_to_add,
        [
            header("x-a", "2", Set),
            header("x-b", "1", Set),
            header("x-c", "3", Add),
            header("x-dest", "v1", Set)
        ],
        "set before add, by name; the destination's after the route's"
    );
    assert_eq!(single.request_headers_to_remove, ["x-d"]);
    assert_eq!(
        single.response_headers_to_add,
        [header("x-e", "4", Set), header("x-f", "5", Add)]
    );
    assert_eq!(single.response_headers_to_remove, ["x-g", "x-h"]);
    assert_eq!(action(single).host_rewrite_specifier, None);

    let weighted = &routes[1];
    assert!(weighted.request_headers_to_add.is_empty());
    let Some(ClusterSpecifier::WeightedClusters(wc)) = &action(weighted).cluster_specifier else {
        panic!("weighted")
    };
    let v1 = &wc.clusters[0];
    assert_eq!(v1.name, V1);
    assert_eq!(v1.request_headers_to_add, [header("x-w", "v1", Add)]);
    assert_eq!(v1.response_headers_to_add, [header("x-r", "v1", Set)]);
    assert_eq!(v1.host_rewrite_specifier, None);
    assert_eq!(wc.clusters[1].name, V2);
    assert!(wc.clusters[1].request_headers_to_add.is_empty());
}

#[test]
fn header_mutations_apply_to_redirects_and_direct_responses_too() {
    let routes = reviews_routes(
        "  - headers: {response: {set: {x-why: maintenance}}}\n    directResponse: {status: 503}\n",
    );
    assert_eq!(
        routes[0].response_headers_to_add,
        [header(
            "x-why",
            "maintenance",
            HeaderAppendAction::OverwriteIfExistsOrAdd
        )]
    );
}

#[test]
fn rewrites_become_prefix_regex_and_host_rewrites() {
    let routes = reviews_routes(
        r#"  - match: [{uri: {prefix: /old}}, {uri: {exact: /exact}}]
    rewrite: {uri: /new, authority: api.example}
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {regex: "^/r/.*"}}]
    rewrite: {uriRegexRewrite: {match: "^/r/(.*)$", rewrite: "/\\1"}}
    route: [{destination: {host: reviews, subset: v1}}]
"#,
    );
    for r in &routes[0..2] {
        let a = action(r);
        assert_eq!(a.prefix_rewrite, "/new");
        assert_eq!(
            a.host_rewrite_specifier,
            Some(HostRewriteSpecifier::HostRewriteLiteral(
                "api.example".into()
            ))
        );
        assert_eq!(a.regex_rewrite, None);
    }
    let re = action(&routes[2])
        .regex_rewrite
        .clone()
        .expect("regex rewrite");
    assert_eq!(re.pattern.expect("pattern").regex, "^/r/(.*)$");
    assert_eq!(re.substitution, "/\\1");
    assert_eq!(action(&routes[2]).prefix_rewrite, "");
    assert_eq!(action(&routes[2]).host_rewrite_specifier, None);
}

#[test]
fn mirrors_become_request_mirror_policies() {
    let routes = reviews_routes(
        r#"  - match: [{uri: {prefix: /all}}]
    mirror: {host: reviews, subset: v2}
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /half}}]
    mirror: {host: reviews, subset: v2}
    mirrorPercentage: {value: 50}
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /many}}]
    mirrors:
    - destination: {host: reviews}
    - destination: {host: reviews, subset: v1}
      percentage: {value: 0.5}
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /legacy}}]
    mirror: {host: reviews, subset: v2}
    mirror_percent: 25
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /off}}]
    mirror: {host: reviews, subset: v2}
    mirrorPercentage: {value: 0}
    route: [{destination: {host: reviews, subset: v1}}]
"#,
    );
    let summary = |r: &Route| -> Vec<(String, Option<FractionalPercent>, Option<bool>)> {
        action(r)
            .request_mirror_policies
            .iter()
            .map(|m| {
                (
                    m.cluster.clone(),
                    m.runtime_fraction.as_ref().and_then(|f| f.default_value),
                    m.trace_sampled.map(|t| t.value),
                )
            })
            .collect()
    };
    let hundred = |n| Some(fraction(n, DenominatorType::Hundred));
    let million = |n| Some(fraction(n, DenominatorType::Million));
    assert_eq!(
        summary(&routes[0]),
        [(V2.into(), hundred(100), Some(false))]
    );
    assert_eq!(
        summary(&routes[1]),
        [(V2.into(), million(500_000), Some(false))]
    );
    assert_eq!(
        summary(&routes[2]),
        [
            (REVIEWS.into(), hundred(100), Some(false)),
            (V1.into(), million(5_000), Some(false)),
        ]
    );
    assert_eq!(summary(&routes[3]), [(V2.into(), hundred(25), Some(false))]);
    assert!(
        summary(&routes[4]).is_empty(),
        "an explicit 0% mirrors nothing"
    );
}

#[test]
fn cors_policies_are_per_route_filter_config() {
    let routes = reviews_routes(
        r#"  - match: [{uri: {prefix: /new}}]
    corsPolicy:
      allowOrigins: [{exact: "https://a.example"}, {regex: "https://.*\\.b\\.example"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-a, x-b]
      exposeHeaders: [x-c]
      maxAge: 24h
      allowCredentials: true
      unmatchedPreflights: IGNORE
    route: [{destination: {host: reviews, subset: v1}}]
  - corsPolicy:
      allowOrigin: ["https://old.example"]
    route: [{destination: {host: reviews, subset: v1}}]
"#,
    );
    let cors = |r: &Route| -> CorsPolicy {
        let any = r
            .typed_per_filter_config
            .get("envoy.filters.http.cors")
            .expect("cors config");
        unpack(CORS_POLICY, any).expect("cors policy")
    };
    let c = cors(&routes[0]);
    let origins: Vec<MatchPattern> = c
        .allow_origin_string_match
        .iter()
        .map(|m| m.match_pattern.clone().expect("pattern"))
        .collect();
    assert_eq!(origins[0], MatchPattern::Exact("https://a.example".into()));
    let MatchPattern::SafeRegex(re) = &origins[1] else {
        panic!("regex origin")
    };
    assert_eq!(re.regex, "https://.*\\.b\\.example");
    assert_eq!(c.allow_methods, "GET,POST");
    assert_eq!(c.allow_headers, "x-a,x-b");
    assert_eq!(c.expose_headers, "x-c");
    assert_eq!(c.max_age, "86400");
    assert_eq!(c.allow_credentials.map(|b| b.value), Some(true));
    assert_eq!(
        c.filter_enabled.and_then(|f| f.default_value),
        Some(fraction(100, DenominatorType::Hundred))
    );
    assert_eq!(
        c.forward_not_matching_preflights.map(|b| b.value),
        Some(false)
    );

    let old = cors(&routes[1]);
    assert_eq!(
        old.allow_origin_string_match[0].match_pattern,
        Some(MatchPattern::Exact("https://old.example".into()))
    );
    assert_eq!(old.max_age, "");
    assert_eq!(old.allow_credentials, None);
    assert_eq!(
        old.forward_not_matching_preflights.map(|b| b.value),
        Some(true)
    );
}

#[test]
fn hash_policies_cover_every_istio_key() {
    use super::hash_policy::hash_policies;
    let spec = |lb: ConsistentHashLb| -> Vec<Option<PolicySpecifier>> {
        hash_policies(&lb)
            .into_iter()
            .map(|h| {
                assert!(!h.terminal);
                h.policy_specifier
            })
            .collect()
    };
    let header = spec(ConsistentHashLb {
        http_header_name: Some("x-user".into()),
        ..Default::default()
    });
    let [Some(PolicySpecifier::Header(h))] = header.as_slice() else {
        panic!("{header:?}")
    };
    assert_eq!(h.header_name, "x-user");
    let cookie = spec(ConsistentHashLb {
        http_cookie: Some(HttpCookie {
            name: "session".into(),
            path: Some("/app".into()),
            ttl: Some(Duration::from_secs(60)),
        }),
        ..Default::default()
    });
    let [Some(PolicySpecifier::Cookie(c))] = cookie.as_slice() else {
        panic!("{cookie:?}")
    };
    assert_eq!(
        (c.name.as_str(), c.path.as_str(), c.ttl),
        ("session", "/app", Some(secs(60)))
    );
    let ip = spec(ConsistentHashLb {
        use_source_ip: Some(true),
        ..Default::default()
    });
    assert!(matches!(
        ip.as_slice(),
        [Some(PolicySpecifier::ConnectionProperties(p))] if p.source_ip
    ));
    let query = spec(ConsistentHashLb {
        http_query_parameter_name: Some("user".into()),
        ..Default::default()
    });
    assert!(matches!(
        query.as_slice(),
        [Some(PolicySpecifier::QueryParameter(q))] if q.name == "user"
    ));
    assert!(spec(ConsistentHashLb::default()).is_empty());
}

const RATINGS: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}, {number: 9090, name: http-admin, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, labels: {version: v1}}, {address: 127.0.0.2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: x-user}}
    portLevelSettings:
    - port: {number: 9090}
      loadBalancer: {consistentHash: {httpQueryParameterName: q}}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer: {consistentHash: {useSourceIp: true}}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      portLevelSettings:
      - port: {number: 9080}
        loadBalancer: {consistentHash: {httpCookie: {name: c, ttl: 10s}}}
  - name: plain
    labels: {version: v1}
"#;

fn hash_keys(a: &RouteAction) -> Vec<String> {
    a.hash_policy
        .iter()
        .map(|h| match &h.policy_specifier {
            Some(PolicySpecifier::Header(h)) => format!("header:{}", h.header_name),
            Some(PolicySpecifier::Cookie(c)) => format!("cookie:{}", c.name),
            Some(PolicySpecifier::ConnectionProperties(_)) => "source-ip".into(),
            Some(PolicySpecifier::QueryParameter(q)) => format!("query:{}", q.name),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn the_most_specific_consistent_hash_goes_on_the_route_action() {
    let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - match: [{uri: {prefix: /v1}}]
    route: [{destination: {host: ratings, subset: v1, port: {number: 9080}}}]
  - match: [{uri: {prefix: /v2}}]
    route: [{destination: {host: ratings, subset: v2, port: {number: 9080}}}]
  - match: [{uri: {prefix: /plain}}]
    route: [{destination: {host: ratings, subset: plain, port: {number: 9080}}}]
  - match: [{uri: {prefix: /admin}}]
    route: [{destination: {host: ratings, subset: plain, port: {number: 9090}}}]
  - route:
    - {destination: {host: ratings, subset: v1, port: {number: 9080}}, weight: 50}
    - {destination: {host: ratings, subset: v2, port: {number: 9080}}, weight: 50}
"#;
    let m = mesh(&[RATINGS, vs]);
    let routes = routes_of(&m, "ratings.default.svc.cluster.local:9080");
    let keys: Vec<Vec<String>> = routes.iter().map(|r| hash_keys(action(r))).collect();
    assert_eq!(
        keys,
        [
            vec!["source-ip".to_string()],
            vec!["cookie:c".to_string()],
            vec!["header:x-user".to_string()],
            vec!["query:q".to_string()],
            vec!["source-ip".to_string(), "cookie:c".to_string()],
        ]
    );
    // A single hashed destination keeps retries on the same host; a split does not.
    assert_eq!(
        action(&routes[0]).retry_policy,
        Some(istio_default_retries(false))
    );
    assert_eq!(
        action(&routes[4]).retry_policy,
        Some(istio_default_retries(true))
    );
    // Without a VirtualService (port 9090 here, through another host), the default route
    // hashes by the rule's top-level and port-level settings.
    let m = mesh(&[RATINGS]);
    let default_9080 = routes_of(&m, "ratings.default.svc.cluster.local:9080");
    assert_eq!(hash_keys(action(&default_9080[0])), ["header:x-user"]);
    let default_9090 = routes_of(&m, "ratings.default.svc.cluster.local:9090");
    assert_eq!(hash_keys(action(&default_9090[0])), ["query:q"]);
    assert_eq!(
        action(&default_9090[0]).retry_policy,
        Some(istio_default_retries(true)),
        "istiod keeps previous_hosts on default routes"
    );
}

#[test]
fn every_emitted_route_config_round_trips() {
    // Everything at once still encodes and decodes (no oneof left half set).
    let routes = reviews_routes(
        r#"  - route: [{destination: {host: reviews, subset: v1}}]
    timeout: 2s
    retries: {attempts: 2, retryOn: "5xx"}
    fault: {abort: {httpStatus: 500, percentage: {value: 1}}}
    corsPolicy: {allowOrigins: [{prefix: "https://"}]}
    mirror: {host: reviews, subset: v2}
    rewrite: {uri: /}
    headers: {request: {set: {x: y}}}
"#,
    );
    let bytes = routes[0].encode_to_vec();
    assert_eq!(Route::decode(bytes.as_slice()).expect("decode"), routes[0]);
}

#[test]
fn port_level_hashing_applies_to_the_port_a_destination_resolves_to() {
    // The destination names no port; the service has one, so its port-level settings apply
    // (the cluster side balances that port's cluster by the same settings).
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: solo, namespace: default}
spec:
  hosts: [solo.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: solo, namespace: default}
spec:
  host: solo
  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: x-top}}
    portLevelSettings:
    - port: {number: 9080}
      loadBalancer: {consistentHash: {httpHeaderName: x-port}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: solo, namespace: default}
spec:
  hosts: [solo]
  http:
  - route: [{destination: {host: solo}}]
"#;
    let routes = routes_of(&mesh(&[yaml]), "solo.default.svc.cluster.local:9080");
    assert_eq!(hash_keys(action(&routes[0])), ["header:x-port"]);
}

#[test]
fn every_virtual_host_asks_for_the_attempt_count_as_istiod_does() {
    let r = translate(&mesh(&[BOOKINFO]), &node("default"));
    let rc: RouteConfiguration = decode(&r, ROUTE, "http_proxy");
    assert!(!rc.virtual_hosts.is_empty());
    assert!(rc
        .virtual_hosts
        .iter()
        .all(|v| v.include_request_attempt_count));
}

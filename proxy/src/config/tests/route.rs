use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method};
use xds_protos::pb::envoy::config::core::v3::{
    data_source, DataSource, HeaderValue as ProtoHeaderValue, HeaderValueOption,
    RuntimeFractionalPercent,
};
use xds_protos::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier,
    query_parameter_matcher::QueryParameterMatchSpecifier,
    redirect_action::{PathRewriteSpecifier, SchemeRewriteSpecifier},
    route, route_action,
    route_match::{GrpcRouteMatchOptions, PathSpecifier},
    weighted_cluster, DirectResponseAction, HeaderMatcher, QueryParameterMatcher, RedirectAction,
    RetryPolicy as ProtoRetryPolicy, Route, RouteAction as ProtoRouteAction, RouteConfiguration,
    RouteMatch, VirtualHost, WeightedCluster,
};
use xds_protos::pb::envoy::r#type::matcher::v3::{
    string_matcher::MatchPattern, RegexMatcher, StringMatcher,
};
use xds_protos::pb::google::protobuf::{BoolValue, Duration as ProtoDuration, UInt32Value};

use crate::config::compile_route_config;
use crate::router::{RedirectPath, RequestView, RouteAction, RouteTable};

// ---- builders ----

fn prefix(p: &str) -> RouteMatch {
    RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix(p.into())),
        ..Default::default()
    }
}

fn to_cluster(name: &str) -> Option<route::Action> {
    Some(route::Action::Route(ProtoRouteAction {
        cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(name.into())),
        ..Default::default()
    }))
}

fn to_weighted(ws: &[(&str, u32)]) -> Option<route::Action> {
    Some(route::Action::Route(ProtoRouteAction {
        cluster_specifier: Some(route_action::ClusterSpecifier::WeightedClusters(
            WeightedCluster {
                clusters: ws
                    .iter()
                    .map(|(n, w)| weighted_cluster::ClusterWeight {
                        name: n.to_string(),
                        weight: Some(UInt32Value { value: *w }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
        )),
        ..Default::default()
    }))
}

fn r(name: &str, m: RouteMatch, action: Option<route::Action>) -> Route {
    Route {
        name: name.into(),
        r#match: Some(m),
        action,
        ..Default::default()
    }
}

fn vhost(name: &str, domains: &[&str], routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        name: name.into(),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        routes,
        ..Default::default()
    }
}

fn rc(vhosts: Vec<VirtualHost>) -> RouteConfiguration {
    RouteConfiguration {
        name: "9080".into(),
        virtual_hosts: vhosts,
        ..Default::default()
    }
}

/// A config with a single route under `*`, for error-path tests.
fn one(route: Route) -> RouteConfiguration {
    rc(vec![vhost("vh", &["*"], vec![route])])
}

fn exact(s: &str) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(MatchPattern::Exact(s.into())),
        ..Default::default()
    }
}

fn string_header(name: &str, sm: StringMatcher) -> HeaderMatcher {
    HeaderMatcher {
        name: name.into(),
        header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(sm)),
        ..Default::default()
    }
}

fn regex(re: &str) -> RegexMatcher {
    RegexMatcher {
        regex: re.into(),
        ..Default::default()
    }
}

fn field_of(config: &RouteConfiguration) -> String {
    compile_route_config(config).unwrap_err().field
}

fn find(
    t: &RouteTable,
    authority: &str,
    path: &str,
    headers: &[(&'static str, &'static str)],
) -> Option<String> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(*k, HeaderValue::from_static(v));
    }
    let method = Method::GET;
    let view = RequestView {
        authority,
        path_and_query: path,
        method: &method,
        headers: &map,
    };
    t.find(&view).map(|r| r.name.to_string())
}

// ---- compiling a realistic table ----

#[allow(deprecated)]
fn bookinfo() -> RouteConfiguration {
    let jason = RouteMatch {
        headers: vec![string_header("end-user", exact("jason"))],
        ..prefix("/")
    };
    let legacy = RouteMatch {
        headers: vec![HeaderMatcher {
            name: "x-legacy".into(),
            header_match_specifier: Some(HeaderMatchSpecifier::ExactMatch("1".into())),
            ..Default::default()
        }],
        ..prefix("/")
    };
    let debug = RouteMatch {
        query_parameters: vec![QueryParameterMatcher {
            name: "debug".into(),
            query_parameter_match_specifier: Some(QueryParameterMatchSpecifier::PresentMatch(true)),
        }],
        ..prefix("/")
    };
    let grpc = RouteMatch {
        grpc: Some(GrpcRouteMatchOptions {}),
        ..prefix("/")
    };
    let upper = RouteMatch {
        case_sensitive: Some(BoolValue { value: false }),
        ..prefix("/ADMIN")
    };
    rc(vec![
        vhost(
            "reviews.default.svc.cluster.local:9080",
            &[
                "reviews.default.svc.cluster.local",
                "reviews",
                "reviews:9080",
            ],
            vec![
                r("jason", jason, to_cluster("outbound|9080|v2|reviews")),
                r("legacy", legacy, to_cluster("outbound|9080|v1|reviews")),
                r("debug", debug, to_cluster("outbound|9080|v3|reviews")),
                r("grpc", grpc, to_cluster("outbound|9080|grpc|reviews")),
                r("admin", upper, to_cluster("outbound|9080|v1|reviews")),
                r(
                    "split",
                    prefix("/"),
                    to_weighted(&[
                        ("outbound|9080|v1|reviews", 90),
                        ("outbound|9080|v3|reviews", 10),
                    ]),
                ),
            ],
        ),
        vhost(
            "allow_any",
            &["*"],
            vec![r(
                "allow_any",
                prefix("/"),
                to_cluster("PassthroughCluster"),
            )],
        ),
    ])
}

#[test]
fn compiles_and_routes_a_realistic_table() {
    let t = compile_route_config(&bookinfo()).expect("valid route config");
    assert_eq!(t.name, "9080");
    let route = |authority, path, headers| find(&t, authority, path, headers);
    assert_eq!(
        route("reviews:9080", "/reviews/0", &[("end-user", "jason")]).as_deref(),
        Some("jason")
    );
    assert_eq!(
        route("reviews", "/", &[("x-legacy", "1")]).as_deref(),
        Some("legacy")
    );
    assert_eq!(route("reviews", "/?debug", &[]).as_deref(), Some("debug"));
    assert_eq!(
        route("reviews", "/svc/M", &[("content-type", "application/grpc")]).as_deref(),
        Some("grpc")
    );
    assert_eq!(route("reviews", "/admin/x", &[]).as_deref(), Some("admin"));
    assert_eq!(
        route("reviews", "/reviews/0", &[]).as_deref(),
        Some("split")
    );
    assert_eq!(
        route("ratings:9080", "/", &[]).as_deref(),
        Some("allow_any")
    );

    let split = t.virtual_hosts[0].routes.last().expect("split route");
    let RouteAction::Weighted(w) = &split.action else {
        panic!("expected weighted clusters");
    };
    assert_eq!(w.total(), 100);
    assert_eq!(&*w.pick(89).name, "outbound|9080|v1|reviews");
    assert_eq!(&*w.pick(90).name, "outbound|9080|v3|reviews");
}

#[test]
fn redirect_and_direct_response() {
    let redirect = Some(route::Action::Redirect(RedirectAction {
        scheme_rewrite_specifier: Some(SchemeRewriteSpecifier::HttpsRedirect(true)),
        host_redirect: "new.example".into(),
        port_redirect: 8443,
        path_rewrite_specifier: Some(PathRewriteSpecifier::PrefixRewrite("/v2".into())),
        response_code: 4, // PERMANENT_REDIRECT
        strip_query: true,
    }));
    let direct = Some(route::Action::DirectResponse(DirectResponseAction {
        status: 503,
        body: Some(DataSource {
            specifier: Some(data_source::Specifier::InlineString("down".into())),
            ..Default::default()
        }),
        ..Default::default()
    }));
    let t = compile_route_config(&rc(vec![vhost(
        "vh",
        &["*"],
        vec![
            r("old", prefix("/v1"), redirect),
            r("down", prefix("/"), direct),
        ],
    )]))
    .expect("valid");
    let routes = &t.virtual_hosts[0].routes;
    let RouteAction::Redirect(rd) = &routes[0].action else {
        panic!("expected a redirect");
    };
    assert_eq!(rd.scheme.as_deref(), Some("https"));
    assert_eq!(rd.host.as_deref(), Some("new.example"));
    assert_eq!(rd.port, Some(8443));
    assert_eq!(rd.path, Some(RedirectPath::PrefixRewrite("/v2".into())));
    assert!(rd.strip_query);
    assert_eq!(rd.status, 308);
    let RouteAction::DirectResponse { status, body } = &routes[1].action else {
        panic!("expected a direct response");
    };
    assert_eq!(*status, 503);
    assert_eq!(body.as_deref(), Some(&b"down"[..]));
}

#[test]
fn features_not_acted_on_are_refused_with_their_field() {
    let with = |f: fn(&mut ProtoRouteAction)| {
        let mut ra = ProtoRouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster("c".into())),
            ..Default::default()
        };
        f(&mut ra);
        let err = compile_route_config(&one(r("r", prefix("/"), Some(route::Action::Route(ra)))))
            .expect_err("refused");
        err.to_string()
    };
    assert!(with(|ra| ra.hedge_policy = Some(Default::default()))
        .contains("route.hedge_policy: not supported"));
    assert!(with(|ra| ra.upgrade_configs = vec![Default::default()])
        .contains("route.upgrade_configs[0]: upgrade \"\" is not supported"));
    assert!(with(|ra| {
        ra.upgrade_configs = vec![route_action::UpgradeConfig {
            upgrade_type: "CONNECT".into(),
            connect_config: Some(Default::default()),
            ..Default::default()
        }]
    })
    .contains("route.upgrade_configs[0].connect_config: not supported"));
    assert!(with(|ra| {
        let ws = route_action::UpgradeConfig {
            upgrade_type: "websocket".into(),
            ..Default::default()
        };
        ra.upgrade_configs = vec![ws.clone(), ws];
    })
    .contains("route.upgrade_configs[1]: upgrade \"websocket\" is listed twice"));
    assert!(with(|ra| ra.priority = 1).contains("route.priority: not supported"));
    assert!(with(|ra| ra.retry_policy = Some(ProtoRetryPolicy {
        retry_on: "5xx,sometimes".into(),
        ..Default::default()
    }))
    .contains("route.retry_policy.retry_on: unknown retry condition \"sometimes\""));
    let header = HeaderValueOption {
        header: Some(ProtoHeaderValue {
            key: ":path".into(),
            value: "a".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let route = Route {
        request_headers_to_add: vec![header],
        ..r("r", prefix("/"), to_cluster("c"))
    };
    let err = compile_route_config(&one(route)).expect_err("refused");
    assert!(
        err.to_string()
            .contains("request_headers_to_add[0].header.key: pseudo-header"),
        "{err}"
    );
}

#[test]
fn stored_policy() {
    let action = Some(route::Action::Route(ProtoRouteAction {
        cluster_specifier: Some(route_action::ClusterSpecifier::Cluster("c".into())),
        timeout: Some(ProtoDuration {
            seconds: 3,
            nanos: 0,
        }),
        ..Default::default()
    }));
    let t = compile_route_config(&one(r("r", prefix("/"), action))).expect("valid");
    assert_eq!(
        t.virtual_hosts[0].routes[0].policy.timeout,
        Some(Duration::from_secs(3))
    );

    // Envoy's defaults: 15 s when unset, no timeout when 0.
    let t = compile_route_config(&one(r("r", prefix("/"), to_cluster("c")))).expect("valid");
    assert_eq!(
        t.virtual_hosts[0].routes[0].policy.timeout,
        Some(Duration::from_secs(15))
    );
    let zero = Some(route::Action::Route(ProtoRouteAction {
        cluster_specifier: Some(route_action::ClusterSpecifier::Cluster("c".into())),
        timeout: Some(ProtoDuration::default()),
        ..Default::default()
    }));
    let t = compile_route_config(&one(r("r", prefix("/"), zero))).expect("valid");
    assert_eq!(t.virtual_hosts[0].routes[0].policy.timeout, None);
}

// ---- rejections, each with its field path ----

#[test]
fn invalid_regex_names_the_route() {
    let config = rc(vec![vhost(
        "vh",
        &["*"],
        vec![
            r("a", prefix("/a"), to_cluster("c")),
            r("b", prefix("/b"), to_cluster("c")),
            r(
                "bad",
                RouteMatch {
                    path_specifier: Some(PathSpecifier::SafeRegex(regex("/x/(["))),
                    ..Default::default()
                },
                to_cluster("c"),
            ),
        ],
    )]);
    let err = compile_route_config(&config).unwrap_err();
    assert_eq!(err.type_url_short, "RouteConfiguration");
    assert_eq!(err.resource, "9080");
    assert_eq!(
        err.field,
        "virtual_hosts[0].routes[2].match.safe_regex.regex"
    );
    assert!(err
        .to_string()
        .starts_with("RouteConfiguration 9080: virtual_hosts[0].routes[2].match.safe_regex.regex: invalid regex: "));
}

#[test]
fn weighted_clusters_need_a_positive_total() {
    let config = one(r("r", prefix("/"), to_weighted(&[("a", 0), ("b", 0)])));
    assert_eq!(
        field_of(&config),
        "virtual_hosts[0].routes[0].route.weighted_clusters.clusters"
    );
    let config = one(r("r", prefix("/"), to_weighted(&[])));
    assert_eq!(
        field_of(&config),
        "virtual_hosts[0].routes[0].route.weighted_clusters.clusters"
    );
    let config = one(r("r", prefix("/"), to_weighted(&[("a", 1), ("", 1)])));
    assert_eq!(
        field_of(&config),
        "virtual_hosts[0].routes[0].route.weighted_clusters.clusters[1].name"
    );
}

#[test]
fn unsupported_cluster_specifiers() {
    let header = Some(route::Action::Route(ProtoRouteAction {
        cluster_specifier: Some(route_action::ClusterSpecifier::ClusterHeader(
            "x-cluster".into(),
        )),
        ..Default::default()
    }));
    let err = compile_route_config(&one(r("r", prefix("/"), header))).unwrap_err();
    assert_eq!(err.field, "virtual_hosts[0].routes[0].route.cluster_header");
    assert_eq!(err.reason, "not supported");

    let plugin = Some(route::Action::Route(ProtoRouteAction {
        cluster_specifier: Some(route_action::ClusterSpecifier::ClusterSpecifierPlugin(
            "p".into(),
        )),
        ..Default::default()
    }));
    assert_eq!(
        field_of(&one(r("r", prefix("/"), plugin))),
        "virtual_hosts[0].routes[0].route.cluster_specifier_plugin"
    );

    assert_eq!(
        field_of(&one(r("r", prefix("/"), None))),
        "virtual_hosts[0].routes[0].action"
    );
    assert_eq!(
        field_of(&one(r("r", prefix("/"), to_cluster("")))),
        "virtual_hosts[0].routes[0].route.cluster"
    );
}

#[test]
fn unsupported_match_fields_are_rejected() {
    let runtime = RouteMatch {
        runtime_fraction: Some(RuntimeFractionalPercent::default()),
        ..prefix("/")
    };
    assert_eq!(
        field_of(&one(r("r", runtime, to_cluster("c")))),
        "virtual_hosts[0].routes[0].match.runtime_fraction"
    );
    let no_path = RouteMatch::default();
    assert_eq!(
        field_of(&one(r("r", no_path, to_cluster("c")))),
        "virtual_hosts[0].routes[0].match.path_specifier"
    );
    let no_match = Route {
        r#match: None,
        ..r("r", prefix("/"), to_cluster("c"))
    };
    assert_eq!(field_of(&one(no_match)), "virtual_hosts[0].routes[0].match");
}

#[test]
fn bad_matchers_name_their_field() {
    let sep = RouteMatch {
        path_specifier: Some(PathSpecifier::PathSeparatedPrefix("/api/".into())),
        ..Default::default()
    };
    assert_eq!(
        field_of(&one(r("r", sep, to_cluster("c")))),
        "virtual_hosts[0].routes[0].match.path_separated_prefix"
    );

    let empty_prefix = RouteMatch {
        headers: vec![
            string_header("ok", exact("")),
            string_header(
                "x",
                StringMatcher {
                    match_pattern: Some(MatchPattern::Prefix(String::new())),
                    ..Default::default()
                },
            ),
        ],
        ..prefix("/")
    };
    assert_eq!(
        field_of(&one(r("r", empty_prefix, to_cluster("c")))),
        "virtual_hosts[0].routes[0].match.headers[1].string_match.prefix"
    );

    let bad_name = RouteMatch {
        headers: vec![string_header("bad header", exact("v"))],
        ..prefix("/")
    };
    assert_eq!(
        field_of(&one(r("r", bad_name, to_cluster("c")))),
        "virtual_hosts[0].routes[0].match.headers[0].name"
    );

    let bad_query_regex = RouteMatch {
        query_parameters: vec![QueryParameterMatcher {
            name: "q".into(),
            query_parameter_match_specifier: Some(QueryParameterMatchSpecifier::StringMatch(
                StringMatcher {
                    match_pattern: Some(MatchPattern::SafeRegex(regex("("))),
                    ..Default::default()
                },
            )),
        }],
        ..prefix("/")
    };
    assert_eq!(
        field_of(&one(r("r", bad_query_regex, to_cluster("c")))),
        "virtual_hosts[0].routes[0].match.query_parameters[0].string_match.safe_regex.regex"
    );
}

#[test]
fn virtual_host_problems() {
    let dup = rc(vec![
        vhost("a", &["reviews", "*"], vec![]),
        vhost("b", &["Reviews"], vec![]),
    ]);
    let err = compile_route_config(&dup).unwrap_err();
    assert_eq!(err.field, "virtual_hosts[1].domains[0]");
    assert!(err.reason.contains("already used"), "{}", err.reason);

    assert_eq!(
        field_of(&rc(vec![vhost("a", &[], vec![])])),
        "virtual_hosts[0].domains"
    );
    assert_eq!(
        field_of(&rc(vec![vhost("", &["*"], vec![])])),
        "virtual_hosts[0].name"
    );
}

#[test]
fn direct_response_limits() {
    let status = |s| {
        one(r(
            "r",
            prefix("/"),
            Some(route::Action::DirectResponse(DirectResponseAction {
                status: s,
                ..Default::default()
            })),
        ))
    };
    assert_eq!(
        field_of(&status(700)),
        "virtual_hosts[0].routes[0].direct_response.status"
    );
    assert!(compile_route_config(&status(204)).is_ok());

    let big = one(r(
        "r",
        prefix("/"),
        Some(route::Action::DirectResponse(DirectResponseAction {
            status: 200,
            body: Some(DataSource {
                specifier: Some(data_source::Specifier::InlineBytes(vec![b'x'; 5000])),
                ..Default::default()
            }),
            ..Default::default()
        })),
    ));
    assert_eq!(
        field_of(&big),
        "virtual_hosts[0].routes[0].direct_response.body"
    );
    let raised = RouteConfiguration {
        max_direct_response_body_size_bytes: Some(UInt32Value { value: 8192 }),
        ..big
    };
    assert!(compile_route_config(&raised).is_ok());
}

#[test]
fn a_decorator_names_the_span_and_is_propagated_by_default() {
    let decorated = |propagate: Option<bool>| {
        let mut route = r("r", prefix("/"), to_cluster("c"));
        route.decorator = Some(xds_protos::pb::envoy::config::route::v3::Decorator {
            operation: "reviews.default.svc.cluster.local:9080/*".into(),
            propagate: propagate.map(|value| BoolValue { value }),
        });
        one(route)
    };
    let t = compile_route_config(&decorated(Some(false))).expect("valid");
    let d = t.virtual_hosts[0].routes[0]
        .policy
        .decorator
        .clone()
        .unwrap();
    assert_eq!(&*d.operation, "reviews.default.svc.cluster.local:9080/*");
    assert_eq!(d.propagate, None);
    // Envoy's default: the operation goes upstream in x-envoy-decorator-operation.
    for propagate in [None, Some(true)] {
        let t = compile_route_config(&decorated(propagate)).expect("valid");
        let d = t.virtual_hosts[0].routes[0]
            .policy
            .decorator
            .clone()
            .unwrap();
        assert_eq!(
            d.propagate.clone().unwrap(),
            "reviews.default.svc.cluster.local:9080/*"
        );
    }
}

use super::harness::*;
use http::Method;
use std::collections::HashMap;
use std::time::Duration;
use xds_protos::pb::envoy::extensions::filters::common::fault::v3::{
    fault_delay::FaultDelaySecifier, FaultDelay,
};
use xds_protos::pb::envoy::extensions::filters::http::cors::v3::{Cors, CorsPolicy};
use xds_protos::pb::envoy::extensions::filters::http::fault::v3::{
    fault_abort::ErrorType, FaultAbort, HttpFault,
};
use xds_protos::pb::envoy::extensions::filters::http::router::v3::Router;
use xds_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_filter, HttpFilter,
};
use xds_protos::pb::envoy::r#type::matcher::v3::{string_matcher::MatchPattern, StringMatcher};
use xds_protos::pb::envoy::r#type::v3::FractionalPercent;
use xds_protos::pb::google::protobuf::{BoolValue, Duration as ProtoDuration};
use xds_protos::type_url;

fn filter<M: prost::Message>(name: &str, url: &str, m: &M) -> HttpFilter {
    HttpFilter {
        name: name.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(any(url, m))),
        ..Default::default()
    }
}

/// The filters istiod puts on a sidecar's outbound connection manager.
fn istio_filters() -> Vec<HttpFilter> {
    vec![
        filter(
            "envoy.filters.http.fault",
            type_url::HTTP_FAULT,
            &HttpFault::default(),
        ),
        filter("envoy.filters.http.cors", type_url::CORS, &Cors::default()),
        filter(
            "envoy.filters.http.router",
            type_url::ROUTER,
            &Router::default(),
        ),
    ]
}

/// A proxy with Istio's filters and one route to `up`.
async fn with_route(
    route: xds_protos::pb::envoy::config::route::v3::Route,
    up: &Upstream,
) -> TestProxy {
    TestProxy::start(
        vhost(vec![route]),
        istio_filters(),
        vec![cluster("svc", &[up.addr])],
    )
    .await
}

fn all() -> Option<FractionalPercent> {
    Some(FractionalPercent {
        numerator: 100,
        denominator: 0,
    })
}

fn fault_route(fault: HttpFault) -> xds_protos::pb::envoy::config::route::v3::Route {
    route_to("svc", move |r, _| {
        r.typed_per_filter_config = HashMap::from([(
            "envoy.filters.http.fault".to_string(),
            any(type_url::HTTP_FAULT, &fault),
        )]);
    })
}

#[tokio::test]
async fn an_abort_answers_without_reaching_the_upstream() {
    let up = Upstream::fixed(200, "ok").await;
    let fault = HttpFault {
        abort: Some(FaultAbort {
            percentage: all(),
            error_type: Some(ErrorType::HttpStatus(418)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let proxy = with_route(fault_route(fault), &up).await;
    let reply = proxy.get("/").await;
    assert_eq!(reply.status, 418);
    assert_eq!(reply.body, "fault filter abort");
    assert_eq!(up.requests(), 0);
}

#[tokio::test]
async fn a_grpc_abort_is_a_trailers_only_answer() {
    let up = Upstream::fixed(200, "ok").await;
    let fault = HttpFault {
        abort: Some(FaultAbort {
            percentage: all(),
            error_type: Some(ErrorType::GrpcStatus(14)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let proxy = with_route(fault_route(fault), &up).await;
    let reply = proxy.get("/").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["grpc-status"], "14");
    assert_eq!(up.requests(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_delay_holds_the_request_then_forwards_it() {
    let up = Upstream::fixed(200, "ok").await;
    let fault = HttpFault {
        delay: Some(FaultDelay {
            percentage: all(),
            fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(ProtoDuration {
                seconds: 7,
                nanos: 0,
            })),
        }),
        ..Default::default()
    };
    let proxy = with_route(fault_route(fault), &up).await;
    let start = tokio::time::Instant::now();
    let reply = proxy.get("/").await;
    assert_eq!(reply.status, 200);
    assert!(start.elapsed() >= Duration::from_secs(7));
    assert_eq!(up.requests(), 1);
}

#[tokio::test]
async fn a_route_without_fault_config_is_untouched() {
    let up = Upstream::fixed(200, "ok").await;
    let proxy = with_route(route_to("svc", |_, _| {}), &up).await;
    assert_eq!(proxy.get("/").await.status, 200);
}

fn cors_route() -> xds_protos::pb::envoy::config::route::v3::Route {
    let policy = CorsPolicy {
        allow_origin_string_match: vec![StringMatcher {
            match_pattern: Some(MatchPattern::Exact("https://shop.example".into())),
            ..Default::default()
        }],
        allow_methods: "GET,POST".into(),
        allow_headers: "x-custom".into(),
        expose_headers: "x-trace".into(),
        max_age: "600".into(),
        allow_credentials: Some(BoolValue { value: true }),
        ..Default::default()
    };
    route_to("svc", move |r, _| {
        r.typed_per_filter_config = HashMap::from([(
            "envoy.filters.http.cors".to_string(),
            any(type_url::CORS_POLICY, &policy),
        )]);
    })
}

#[tokio::test]
async fn cors_preflights_are_answered_by_the_proxy() {
    let up = Upstream::fixed(200, "ok").await;
    let proxy = with_route(cors_route(), &up).await;
    let mut req = get("/api");
    *req.method_mut() = Method::OPTIONS;
    let h = req.headers_mut();
    h.insert("origin", "https://shop.example".parse().unwrap());
    h.insert("access-control-request-method", "POST".parse().unwrap());
    let reply = proxy.send(req).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.headers["access-control-allow-origin"],
        "https://shop.example"
    );
    assert_eq!(reply.headers["access-control-allow-methods"], "GET,POST");
    assert_eq!(reply.headers["access-control-max-age"], "600");
    assert_eq!(up.requests(), 0);

    let mut actual = get("/api");
    actual
        .headers_mut()
        .insert("origin", "https://shop.example".parse().unwrap());
    let reply = proxy.send(actual).await;
    assert_eq!(reply.body, "ok");
    assert_eq!(
        reply.headers["access-control-allow-origin"],
        "https://shop.example"
    );
    assert_eq!(reply.headers["access-control-expose-headers"], "x-trace");
    assert_eq!(reply.headers["access-control-allow-credentials"], "true");

    let mut other = get("/api");
    other
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let reply = proxy.send(other).await;
    assert!(!reply.headers.contains_key("access-control-allow-origin"));
}

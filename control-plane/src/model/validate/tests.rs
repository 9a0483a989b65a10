//! Each check produces a diagnostic naming the file, the resource and the field.

use crate::model::{parse_file, Diagnostic, Severity, NOT_ACTED_ON};
use std::path::Path;

pub(super) fn diagnostics(text: &str) -> Vec<Diagnostic> {
    parse_file(Path::new("mesh/r.yaml"), text).1
}

/// Asserts that `text` has an error at `field` whose message contains `needle`, and that
/// the resource is rejected.
pub(super) fn assert_error(text: &str, field: &str, needle: &str) {
    let resources = assert_reported(text, field, needle);
    assert!(
        resources.is_empty(),
        "an invalid resource must not be returned"
    );
}

fn assert_reported(text: &str, field: &str, needle: &str) -> Vec<crate::model::AnyResource> {
    let (resources, diagnostics) = parse_file(Path::new("mesh/r.yaml"), text);
    let found = diagnostics
        .iter()
        .find(|d| d.severity == Severity::Error && d.field.as_deref() == Some(field));
    let Some(d) = found else {
        panic!("no error at {field}: {diagnostics:#?}");
    };
    assert!(d.message.contains(needle), "{d}");
    assert_eq!(d.file, Path::new("mesh/r.yaml"));
    assert!(d.resource.is_some(), "{d}");
    assert!(d.line.is_some(), "{d}");
    resources
}

pub(super) fn vs(spec: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews}}\nspec:\n{spec}")
}

pub(super) fn dr(spec: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: reviews}}\nspec:\n{spec}")
}

fn se(spec: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: ext}}\nspec:\n{spec}")
}

#[test]
fn weights_must_sum_to_100() {
    let text = vs("  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 50
    - destination: {host: reviews, subset: v2}
      weight: 40
");
    assert_error(
        &text,
        "spec.http[0].route",
        "weights sum to 90, they must sum to 100",
    );
    let d = diagnostics(&text)
        .into_iter()
        .find(|d| d.is_error())
        .expect("error");
    assert_eq!(
        d.to_string(),
        "mesh/r.yaml:8:5: error: VirtualService default/reviews: spec.http[0].route: weights sum to 90, they must sum to 100"
    );
}

#[test]
fn a_single_destination_may_omit_its_weight() {
    let text = vs("  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n");
    assert!(diagnostics(&text).iter().all(|d| !d.is_error()));
}

#[test]
fn weights_of_tcp_routes_are_checked_too() {
    let text = vs("  hosts: [db]
  tcp:
  - route:
    - {destination: {host: db}, weight: 30}
    - {destination: {host: db}, weight: 30}
");
    assert_error(&text, "spec.tcp[0].route", "weights sum to 60");
}

#[test]
fn a_negative_weight_is_an_error() {
    let text = vs("  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews}, weight: -10}
    - {destination: {host: reviews}, weight: 110}
");
    assert_error(&text, "spec.http[0].route[0].weight", "negative");
}

#[test]
fn route_and_redirect_together_is_an_error() {
    let text = vs("  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews}}]
    redirect: {uri: /x}
");
    assert_error(&text, "spec.http[0].redirect", "both route and redirect");
    let text = vs("  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews}}]
    directResponse: {status: 200}
");
    assert_error(
        &text,
        "spec.http[0].directResponse",
        "both route and directResponse",
    );
}

#[test]
fn an_http_route_needs_an_action() {
    let text = vs("  hosts: [reviews]\n  http:\n  - name: nothing\n");
    assert_error(
        &text,
        "spec.http[0]",
        "needs one of route, redirect, directResponse or delegate",
    );
}

#[test]
fn an_invalid_regex_rejects_the_resource_whatever_field_holds_it() {
    let bad = "(a)\\1";
    let cases = [
        (
            "- uri: {regex: 'RE'}",
            "match",
            "spec.http[0].match[0].uri.regex",
        ),
        (
            "- scheme: {regex: 'RE'}",
            "match",
            "spec.http[0].match[0].scheme.regex",
        ),
        (
            "- method: {regex: 'RE'}",
            "match",
            "spec.http[0].match[0].method.regex",
        ),
        (
            "- authority: {regex: 'RE'}",
            "match",
            "spec.http[0].match[0].authority.regex",
        ),
        (
            "- headers: {x-user: {regex: 'RE'}}",
            "match",
            "spec.http[0].match[0].headers.x-user.regex",
        ),
        (
            "- queryParams: {q: {regex: 'RE'}}",
            "match",
            "spec.http[0].match[0].queryParams.q.regex",
        ),
        (
            "- withoutHeaders: {x-debug: {regex: 'RE'}}",
            "match",
            "spec.http[0].match[0].withoutHeaders.x-debug.regex",
        ),
        (
            "  uriRegexRewrite: {match: 'RE', rewrite: '/x'}",
            "rewrite",
            "spec.http[0].rewrite.uriRegexRewrite.match",
        ),
        (
            "  allowOrigins: [{regex: 'RE'}]",
            "corsPolicy",
            "spec.http[0].corsPolicy.allowOrigins[0].regex",
        ),
    ];
    for (yaml, key, field) in cases {
        let text = vs(&format!(
            "  hosts: [reviews]\n  http:\n  - {key}:\n    {}\n    route: [{{destination: {{host: reviews}}}}]\n",
            yaml.replace("RE", bad)
        ));
        assert_error(&text, field, "backreference");
    }
    let text = vs("  hosts: [reviews]
  http:
  - match:
    - uri: {regex: \"/api/(v1\"}
    route: [{destination: {host: reviews}}]
");
    assert_error(
        &text,
        "spec.http[0].match[0].uri.regex",
        "invalid regex `/api/(v1`: unclosed group",
    );
}

#[test]
fn an_empty_host_is_an_error() {
    let text = vs("  hosts: [reviews]\n  http:\n  - route: [{destination: {host: \"\"}}]\n");
    assert_error(
        &text,
        "spec.http[0].route[0].destination.host",
        "must not be empty",
    );
    let text = vs("  hosts: [reviews]\n  http:\n  - route: [{destination: {subset: v1}}]\n");
    assert_error(
        &text,
        "spec.http[0].route[0].destination.host",
        "must not be empty",
    );
    assert_error(&dr("  host: \"\"\n"), "spec.host", "must not be empty");
}

#[test]
fn a_bad_port_number_is_an_error() {
    let text = vs("  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews, port: {number: 0}}}]\n");
    assert_error(
        &text,
        "spec.http[0].route[0].destination.port.number",
        "out of range",
    );
    let text = se("  hosts: [a.example.com]\n  ports: [{number: 70000, name: http}]\n");
    assert_error(&text, "spec.ports[0].number", "port 70000 is out of range");
    let text = se("  hosts: [a.example.com]\n  ports: [{number: 80, name: http, targetPort: 0}]\n");
    assert_error(&text, "spec.ports[0].targetPort", "out of range");
}

#[test]
fn a_service_entry_needs_hosts_and_ports() {
    assert_error(
        &se("  ports: [{number: 80, name: http}]\n"),
        "spec.hosts",
        "at least one host",
    );
    assert_error(
        &se("  hosts: [a.example.com]\n"),
        "spec.ports",
        "at least one port",
    );
}

#[test]
fn static_resolution_needs_ip_endpoints() {
    let text = se("  hosts: [a.example.com]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints:
  - address: 10.0.0.1
  - address: unix:///var/run/a.sock
  - address: a-1.example.com
");
    assert_error(
        &text,
        "spec.endpoints[2].address",
        "not an IP address or unix:// socket",
    );
}

#[test]
fn endpoints_and_workload_selector_together_is_an_error() {
    let text = se("  hosts: [a.example.com]
  ports: [{number: 80, name: http}]
  endpoints: [{address: 10.0.0.1}]
  workloadSelector: {labels: {app: a}}
");
    assert_error(
        &text,
        "spec.workloadSelector",
        "either endpoints or workloadSelector",
    );
}

#[test]
fn endpoint_ports_must_name_service_ports() {
    let text = se("  hosts: [a.example.com]
  ports: [{number: 80, name: http}]
  endpoints: [{address: 10.0.0.1, ports: {grpc: 9000}}]
");
    assert_error(
        &text,
        "spec.endpoints[0].ports.grpc",
        "not one of the ServiceEntry's ports",
    );
}

#[test]
fn subsets_need_unique_names() {
    assert_error(
        &dr("  host: reviews\n  subsets:\n  - labels: {version: v1}\n"),
        "spec.subsets[0].name",
        "needs a name",
    );
    let text = dr("  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v1, labels: {version: v2}}
");
    assert_error(&text, "spec.subsets[1].name", "\"v1\" is defined twice");
}

#[test]
fn load_balancer_oneofs_are_checked() {
    let text = dr("  host: reviews
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      consistentHash: {useSourceIp: true}
");
    assert_error(
        &text,
        "spec.trafficPolicy.loadBalancer",
        "either simple or consistentHash",
    );
}

#[test]
fn percentages_are_checked() {
    let text = vs("  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 150}}}
");
    assert_error(
        &text,
        "spec.http[0].fault.abort.percentage.value",
        "150 is not a percentage",
    );
}

#[test]
fn an_unknown_enum_value_is_an_error() {
    let text =
        se("  hosts: [a.example.com]\n  ports: [{number: 80, name: http}]\n  resolution: MAGIC\n");
    assert_error(&text, "spec.resolution", "unknown variant `MAGIC`");
}

#[test]
fn fields_not_acted_on_warn_once_per_resource_and_path() {
    let text = vs("  hosts: [reviews]
  gateways: [mesh]
  http:
  - name: a
    match: [{uri: {prefix: /a}, ignoreUriCase: true}]
    route: [{destination: {host: reviews}}]
    timeout: 1s
    retries: {attempts: 2, retryIgnorePreviousHosts: true}
  - name: b
    route: [{destination: {host: reviews}}]
    retries: {attempts: 2, retryIgnorePreviousHosts: true}
  - name: c
    match: [{uri: {prefix: /c}}]
    redirect: {uri: /d, derivePort: FROM_REQUEST_PORT}
  - name: d
    match: [{uri: {prefix: /e}}]
    redirect: {uri: /f, derivePort: FROM_REQUEST_PORT}
  tcp:
  - route: [{destination: {host: reviews}}]
");
    let (resources, diagnostics) = parse_file(Path::new("mesh/r.yaml"), &text);
    assert_eq!(
        resources.len(),
        1,
        "warnings do not reject: {diagnostics:#?}"
    );
    let warned: Vec<&str> = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(|d| {
            assert_eq!(d.message, NOT_ACTED_ON);
            assert_eq!(
                d.resource.as_deref(),
                Some("VirtualService default/reviews")
            );
            d.field.as_deref().unwrap_or("")
        })
        .collect();
    assert_eq!(
        warned,
        ["spec.http[2].redirect.derivePort", "spec.tcp"],
        "gateways, ignoreUriCase, timeout and retries are acted on; derivePort and TCP routes are not yet"
    );
}

#[test]
fn acted_on_fields_do_not_warn() {
    let text = se("  hosts: [a.example.com]
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1, ports: {http: 9000}, labels: {v: a}, weight: 2}]
");
    assert!(diagnostics(&text).is_empty(), "{:#?}", diagnostics(&text));
    let text = dr("  host: reviews\n  subsets: [{name: v1, labels: {version: v1}}]\n");
    assert!(diagnostics(&text).is_empty(), "{:#?}", diagnostics(&text));
    let text = dr("  host: reviews
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    portLevelSettings: [{port: {number: 80}, loadBalancer: {warmup: {duration: 10s}}}]
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user, ringHash: {minimumRingSize: 2048}}}}
");
    assert!(diagnostics(&text).is_empty(), "{:#?}", diagnostics(&text));
}

#[test]
fn fields_without_traffic_effect_do_not_warn_and_the_rest_do() {
    let text = se("  hosts: [api.example.com]
  ports: [{number: 443, name: https, protocol: TLS}]
  location: MESH_EXTERNAL
  resolution: DNS
  exportTo: ['*']
  endpoints: [{address: api.example.com, locality: us-east/a, serviceAccount: api}]
");
    assert!(diagnostics(&text).is_empty(), "{:#?}", diagnostics(&text));
    let text = dr("  host: reviews
  exportTo: ['.']
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 10, idleTimeout: 1h}, http: {h2UpgradePolicy: UPGRADE}}
    outlierDetection: {consecutive5xxErrors: 3}
    loadBalancer: {simple: ROUND_ROBIN, localityLbSetting: {enabled: true}}
");
    let warned: Vec<String> = diagnostics(&text)
        .into_iter()
        .filter(|d| d.message == NOT_ACTED_ON)
        .filter_map(|d| d.field)
        .collect();
    assert_eq!(
        warned,
        [
            "spec.trafficPolicy.connectionPool.http.h2UpgradePolicy",
            "spec.trafficPolicy.connectionPool.tcp.idleTimeout",
            "spec.trafficPolicy.loadBalancer.localityLbSetting"
        ]
    );
}

#[test]
fn export_to_follows_istio_validation() {
    let errors = |export_to: &str| -> Vec<String> {
        let text = se(&format!(
            "  hosts: [api.example.com]\n  ports: [{{number: 80, name: http}}]\n  exportTo: {export_to}\n"
        ));
        diagnostics(&text)
            .into_iter()
            .filter(|d| d.severity == crate::model::Severity::Error)
            .filter_map(|d| d.field)
            .collect()
    };
    assert!(errors("['.']").is_empty());
    assert!(errors("['.', prod, test]").is_empty());
    assert!(errors("['~']").is_empty());
    assert_eq!(errors("['*', prod]"), ["spec.exportTo"]);
    assert_eq!(errors("['~', '.']"), ["spec.exportTo"]);
    assert_eq!(errors("[prod, prod]"), ["spec.exportTo[1]"]);
    assert_eq!(errors("['Prod_ns']"), ["spec.exportTo[0]"]);
    assert_eq!(errors("['']"), ["spec.exportTo[0]"]);
}

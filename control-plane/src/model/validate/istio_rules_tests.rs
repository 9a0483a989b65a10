//! The combinations Istio's validation rejects, and the deprecated spellings it accepts with a
//! warning. Each error names the file, the resource and the field.

use super::tests::{assert_error, diagnostics, dr, vs};
use crate::model::{parse_file, AnyResource, Severity};
use std::path::Path;

/// An HTTP route of a VirtualService for `reviews`, with `extra` lines appended to it.
fn route(extra: &str) -> String {
    vs(&format!(
        "  hosts: [reviews]\n  http:\n  - route: [{{destination: {{host: reviews}}}}]\n{extra}"
    ))
}

/// A local reply (no `route`) with `extra` lines appended.
fn local(reply: &str, extra: &str) -> String {
    vs(&format!(
        "  hosts: [reviews]\n  http:\n  - {reply}\n{extra}"
    ))
}

fn warnings(text: &str) -> Vec<(String, String)> {
    diagnostics(text)
        .into_iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(|d| (d.field.unwrap_or_default(), d.message))
        .collect()
}

#[test]
fn local_replies_exclude_route_fault_and_rewrite() {
    let redirect = "redirect: {uri: /new}";
    let direct = "directResponse: {status: 503}";
    assert_error(
        &local(redirect, "    route: [{destination: {host: reviews}}]"),
        "spec.http[0].redirect",
        "both route and redirect",
    );
    assert_error(
        &local(direct, "    route: [{destination: {host: reviews}}]"),
        "spec.http[0].directResponse",
        "both route and directResponse",
    );
    assert_error(
        &local(redirect, &format!("    {direct}")),
        "spec.http[0].directResponse",
        "both redirect and directResponse",
    );
    assert_error(
        &local(redirect, "    fault: {abort: {httpStatus: 500}}"),
        "spec.http[0].fault",
        "both fault and redirect",
    );
    assert_error(
        &local(direct, "    rewrite: {uri: /x}"),
        "spec.http[0].rewrite",
        "both rewrite and directResponse",
    );
    assert_error(
        &local("redirect: {redirectCode: 301}", ""),
        "spec.http[0].redirect",
        "must change something",
    );
    assert_error(
        &local("redirect: {uri: /a, redirectCode: 200}", ""),
        "spec.http[0].redirect.redirectCode",
        "not a redirect code",
    );
    assert_error(
        &local("redirect: {scheme: ftp}", ""),
        "spec.http[0].redirect.scheme",
        "http or https",
    );
}

#[test]
fn retries_follow_istio() {
    assert_error(
        &route("    retries: {attempts: 0, perTryTimeout: 2s}"),
        "spec.http[0].retries.attempts",
        "attempts is 0",
    );
    assert_error(
        &route("    retries: {perTryTimeout: 2s}"),
        "spec.http[0].retries.attempts",
        "attempts is 0",
    );
    assert_error(
        &route("    retries: {attempts: -1}"),
        "spec.http[0].retries.attempts",
        "negative",
    );
    assert_error(
        &route("    retries: {attempts: 3, retryOn: '5xx,sometimes'}"),
        "spec.http[0].retries.retryOn",
        "\"sometimes\" is not a retry-on policy",
    );
    let good =
        route("    retries: {attempts: 3, perTryTimeout: 2s, retryOn: 'gateway-error,503,reset'}");
    let errors: Vec<_> = diagnostics(&good)
        .into_iter()
        .filter(|d| d.is_error())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn durations_are_whole_milliseconds_of_at_least_one() {
    assert_error(
        &route("    timeout: 0s"),
        "spec.http[0].timeout",
        "at least 1ms",
    );
    assert_error(
        &route("    retries: {attempts: 2, perTryTimeout: 1500us}"),
        "spec.http[0].retries.perTryTimeout",
        "millisecond",
    );
    assert_error(
        &route("    corsPolicy: {maxAge: 1500ms}"),
        "spec.http[0].corsPolicy.maxAge",
        "to the second",
    );
    // Negative durations are refused when read.
    assert_error(
        &route("    timeout: -1s"),
        "spec.http[0].timeout",
        "negative",
    );
}

#[test]
fn faults_follow_istio() {
    assert_error(
        &route("    fault: {}"),
        "spec.http[0].fault",
        "a delay or an abort",
    );
    assert_error(
        &route("    fault: {delay: {percentage: {value: 10}}}"),
        "spec.http[0].fault.delay",
        "needs fixedDelay",
    );
    assert_error(
        &route("    fault: {delay: {exponentialDelay: 1s}}"),
        "spec.http[0].fault.delay.exponentialDelay",
        "not supported",
    );
    assert_error(
        &route("    fault: {abort: {httpStatus: 600}}"),
        "spec.http[0].fault.abort.httpStatus",
        "200-599",
    );
    assert_error(
        &route("    fault: {abort: {httpStatus: 199}}"),
        "spec.http[0].fault.abort.httpStatus",
        "200-599",
    );
    assert_error(
        &route("    fault: {abort: {grpcStatus: NOPE}}"),
        "spec.http[0].fault.abort.grpcStatus",
        "not a gRPC status",
    );
    assert_error(
        &route("    fault: {abort: {http2Error: REFUSED_STREAM}}"),
        "spec.http[0].fault.abort.http2Error",
        "not supported",
    );
    assert_error(
        &route("    fault: {abort: {percentage: {value: 5}}}"),
        "spec.http[0].fault.abort",
        "exactly one of httpStatus",
    );
    assert_error(
        &route("    fault: {delay: {fixedDelay: 1s, percentage: {value: -1}}}"),
        "spec.http[0].fault.delay.percentage.value",
        "not a percentage",
    );
    assert_error(
        &route("    fault: {delay: {fixedDelay: 1s, percentage: {value: 0.00001}}}"),
        "spec.http[0].fault.delay.percentage.value",
        "0.0001",
    );
    assert_error(
        &route("    fault: {abort: {httpStatus: 503, percent: 101}}"),
        "spec.http[0].fault.abort.percent",
        "not a percentage",
    );
}

#[test]
fn the_deprecated_integer_percent_warns() {
    let w = warnings(&route("    fault: {delay: {fixedDelay: 1s, percent: 50}}"));
    assert!(
        w.iter().any(
            |(field, message)| field == "spec.http[0].fault.delay.percent"
                && message.contains("deprecated: write percentage: {value: 50}")
        ),
        "{w:?}"
    );
    let w = warnings(&route(
        "    fault: {abort: {httpStatus: 503, percent: 50, percentage: {value: 1}}}",
    ));
    assert!(
        w.iter().any(
            |(field, message)| field == "spec.http[0].fault.abort.percent"
                && message.contains("ignored")
        ),
        "{w:?}"
    );
}

#[test]
fn istio_bookinfo_fault_samples_are_accepted() {
    for (file, text) in [
        (
            "ratings-test-delay.yaml",
            include_str!("../../../tests/fixtures/istio-samples/ratings-test-delay.yaml"),
        ),
        (
            "ratings-test-abort.yaml",
            include_str!("../../../tests/fixtures/istio-samples/ratings-test-abort.yaml"),
        ),
    ] {
        let (resources, diagnostics) = parse_file(Path::new(file), text);
        let errors: Vec<_> = diagnostics.iter().filter(|d| d.is_error()).collect();
        assert!(errors.is_empty(), "{file}: {errors:#?}");
        assert!(
            diagnostics
                .iter()
                .any(|d| d.message.starts_with("deprecated: write percentage")),
            "{file}: {diagnostics:#?}"
        );
        let [AnyResource::VirtualService(vs)] = &resources[..] else {
            panic!("{file}: one VirtualService expected, got {resources:#?}");
        };
        let fault = vs.spec.http[0].fault.as_ref().expect("fault");
        let share = fault
            .delay
            .as_ref()
            .map(|d| d.effective_percentage())
            .or_else(|| fault.abort.as_ref().map(|a| a.effective_percentage()));
        assert_eq!(share, Some(Some(100.0)), "{file}");
    }
}

#[test]
fn mirroring_rewrites_and_headers_follow_istio() {
    assert_error(
        &route("    mirror: {host: shadow}\n    mirrors: [{destination: {host: shadow}}]"),
        "spec.http[0].mirrors",
        "either mirror or mirrors",
    );
    assert_error(
        &route("    mirror: {host: shadow}\n    mirrorPercentage: {value: 101}"),
        "spec.http[0].mirrorPercentage.value",
        "between 0 and 100",
    );
    assert_error(
        &route("    rewrite: {uri: /a, uriRegexRewrite: {match: '^/b', rewrite: /c}}"),
        "spec.http[0].rewrite.uriRegexRewrite",
        "either uri or uriRegexRewrite",
    );
    assert_error(
        &route("    rewrite: {uriRegexRewrite: {match: '^/b'}}"),
        "spec.http[0].rewrite.uriRegexRewrite.rewrite",
        "needs a rewrite",
    );
    assert_error(
        &route("    rewrite: {}"),
        "spec.http[0].rewrite",
        "needs uri, uriRegexRewrite or authority",
    );
    assert_error(
        &route(
            "    rewrite: {authority: a.example}\n    headers: {request: {set: {host: b.example}}}",
        ),
        "spec.http[0].headers.request.set.host",
        "already rewritten",
    );
    assert_error(
        &route("    headers: {response: {set: {':status': '200'}}}"),
        "spec.http[0].headers.response.set.:status",
        "cannot be changed",
    );
    assert_error(
        &route("    headers: {request: {remove: [Host]}}"),
        "spec.http[0].headers.request.remove[0]",
        "cannot be changed",
    );
    assert_error(
        &route("    corsPolicy: {allowMethods: [GET, FETCH]}"),
        "spec.http[0].corsPolicy.allowMethods[1]",
        "\"FETCH\" is not an HTTP method",
    );
    let w = warnings(&route("    mirror: {host: shadow}\n    mirror_percent: 5"));
    assert!(
        w.iter()
            .any(|(f, m)| f == "spec.http[0].mirrorPercent" && m.contains("mirrorPercentage")),
        "{w:?}"
    );
}

#[test]
fn matches_follow_istio() {
    let m = |cond: &str| {
        vs(&format!(
            "  hosts: [reviews]\n  http:\n  - match: [{cond}]\n    route: [{{destination: {{host: reviews}}}}]\n"
        ))
    };
    assert_error(
        &m("{headers: {'x user': {exact: a}}}"),
        "spec.http[0].match[0].headers.x user",
        "not a header name",
    );
    assert_error(
        &m("{method: {prefix: ''}}"),
        "spec.http[0].match[0].method.prefix",
        "must not be empty",
    );
    assert_error(
        &m("{withoutHeaders: {x-debug: {regex: '*'}}}"),
        "spec.http[0].match[0].withoutHeaders.x-debug.regex",
        "shorthand",
    );
    // The URI may have an empty prefix (it matches everything).
    let (resources, _) = parse_file(Path::new("r.yaml"), &m("{uri: {prefix: ''}}"));
    assert_eq!(resources.len(), 1);
}

#[test]
fn direct_response_bodies_are_bounded() {
    let big = "x".repeat((1 << 20) + 1);
    assert_error(
        &local(
            &format!("directResponse: {{status: 200, body: {{string: {big}}}}}"),
            "",
        ),
        "spec.http[0].directResponse.body",
        "at most 1 MB",
    );
}

#[test]
fn destination_rules_follow_istio() {
    assert_error(
        &dr("  host: reviews\n  trafficPolicy: {}\n"),
        "spec.trafficPolicy",
        "at least one setting",
    );
    assert_error(
        &dr("  host: reviews\n  trafficPolicy:\n    portLevelSettings: [{port: {number: 80}}]\n"),
        "spec.trafficPolicy.portLevelSettings[0]",
        "at least one setting",
    );
    assert_error(
        &dr("  host: reviews\n  trafficPolicy:\n    tunnel: {targetHost: a.example, targetPort: 80}\n    proxyProtocol: {version: V1}\n"),
        "spec.trafficPolicy.proxyProtocol",
        "tunnel and proxyProtocol",
    );
    let lb = |spec: &str| {
        dr(&format!(
            "  host: reviews\n  trafficPolicy:\n    loadBalancer: {spec}\n"
        ))
    };
    assert_error(
        &lb("{consistentHash: {httpHeaderName: x-user, useSourceIp: true}}"),
        "spec.trafficPolicy.loadBalancer.consistentHash",
        "exactly one of",
    );
    assert_error(
        &lb("{consistentHash: {useSourceIp: true, minimumRingSize: 10, ringHash: {minimumRingSize: 10}}}"),
        "spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize",
        "not both",
    );
    assert_error(
        &lb("{consistentHash: {useSourceIp: true, maglev: {}}}"),
        "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize",
        "needs a tableSize",
    );
    assert_error(
        &lb("{consistentHash: {useSourceIp: true, maglev: {tableSize: 65536}}}"),
        "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize",
        "prime",
    );
    assert_error(
        &lb("{simple: ROUND_ROBIN, warmupDurationSecs: 0s}"),
        "spec.trafficPolicy.loadBalancer.warmupDurationSecs",
        "at least 1ms",
    );
    assert_error(
        &dr("  host: reviews\n  trafficPolicy:\n    outlierDetection: {consecutiveLocalOriginFailures: 3}\n"),
        "spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures",
        "splitExternalLocalOriginErrors",
    );
    assert_error(
        &dr("  host: reviews\n  trafficPolicy:\n    connectionPool: {http: {h2UpgradePolicy: UPGRADE, useClientProtocol: true}}\n"),
        "spec.trafficPolicy.connectionPool.http.useClientProtocol",
        "UPGRADE",
    );
    assert_error(
        &dr("  host: reviews\n  subsets: [{name: V1, labels: {version: v1}}]\n"),
        "spec.subsets[0].name",
        "DNS label",
    );
    let w = warnings(&lb(
        "{consistentHash: {useSourceIp: true, minimumRingSize: 2048}}",
    ));
    assert!(
        w.iter().any(|(f, m)| f
            == "spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize"
            && m.contains("ringHash: {minimumRingSize: 2048}")),
        "{w:?}"
    );
}

use super::*;

fn policy(on: &str, codes: &[u16]) -> RetryPolicy {
    RetryPolicy {
        on: RetryOn::parse(on).unwrap(),
        num_retries: 2,
        per_try_timeout: None,
        retriable_status_codes: codes.into(),
        base_interval: DEFAULT_BASE_INTERVAL,
        max_interval: DEFAULT_BASE_INTERVAL * MAX_INTERVAL_FACTOR,
        avoid_previous_hosts: false,
        host_selection_max_attempts: 1,
    }
}

fn grpc(code: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("grpc-status", code.parse().unwrap());
    h
}

/// Istio's default when a VirtualService sets no retries.
fn istio_default() -> RetryPolicy {
    policy(
        "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
        &[503],
    )
}

#[test]
fn istio_default_hides_a_503_but_not_a_500() {
    let p = istio_default();
    assert!(p.retries_response(503, &HeaderMap::new()));
    assert!(!p.retries_response(500, &HeaderMap::new()));
    assert!(!p.retries_response(502, &HeaderMap::new()));
    assert!(p.retries_failure(TryFailure::ConnectFailure));
    assert!(p.retries_failure(TryFailure::RefusedStream));
    assert!(!p.retries_failure(TryFailure::Reset));
    assert!(p.retries_response(200, &grpc("14")));
    assert!(p.retries_response(200, &grpc("1")));
    assert!(!p.retries_response(200, &grpc("13")));
}

#[test]
fn umbrella_conditions_expand_as_envoy_documents() {
    let five = policy("5xx", &[]);
    for status in [500, 501, 503, 599] {
        assert!(five.retries_response(status, &HeaderMap::new()), "{status}");
    }
    assert!(!five.retries_response(404, &HeaderMap::new()));
    for f in [
        TryFailure::ConnectFailure,
        TryFailure::Reset,
        TryFailure::RefusedStream,
        TryFailure::PerTryTimeout,
    ] {
        assert!(five.retries_failure(f), "{f:?}");
    }
    let gw = policy("gateway-error", &[]);
    assert!(gw.retries_response(502, &HeaderMap::new()));
    assert!(gw.retries_response(504, &HeaderMap::new()));
    assert!(!gw.retries_response(500, &HeaderMap::new()));
    assert!(gw.retries_failure(TryFailure::ConnectFailure));
}

#[test]
fn narrow_conditions_stay_narrow() {
    let p = policy("retriable-4xx,envoy-ratelimited", &[]);
    assert!(p.retries_response(409, &HeaderMap::new()));
    assert!(!p.retries_response(404, &HeaderMap::new()));
    assert!(!p.retries_response(503, &HeaderMap::new()));
    let mut limited = HeaderMap::new();
    limited.insert("x-envoy-ratelimited", "true".parse().unwrap());
    assert!(p.retries_response(429, &limited));
    let reset = policy("reset", &[]);
    assert!(reset.retries_failure(TryFailure::Reset));
    assert!(reset.retries_failure(TryFailure::PerTryTimeout));
    assert!(!reset.retries_response(503, &HeaderMap::new()));
    let before = policy("reset-before-request", &[]);
    assert!(before.retries_failure(TryFailure::ResetBeforeRequest));
    assert!(!before.retries_failure(TryFailure::Reset));
    let grpc_all = policy(
        "cancelled,deadline-exceeded,internal,resource-exhausted",
        &[],
    );
    for code in ["1", "4", "13", "8"] {
        assert!(grpc_all.retries_response(200, &grpc(code)), "{code}");
    }
    assert!(!grpc_all.retries_response(200, &grpc("14")));
}

#[test]
fn unknown_conditions_are_refused_by_name() {
    assert_eq!(
        RetryOn::parse("5xx,retry-when-it-rains").unwrap_err(),
        "unknown retry condition \"retry-when-it-rains\""
    );
    assert_eq!(RetryOn::parse(" 5xx , reset ").unwrap(), {
        let mut on = RetryOn::FIVE_XX;
        on.0 |= RetryOn::RESET.0;
        on
    });
}

#[test]
fn backoff_is_fully_jittered_and_capped() {
    let p = istio_default();
    // Retry 1: [0, 25 ms); retry 2: [0, 75 ms); retry 3: [0, 175 ms); later ones cap at 250 ms.
    assert_eq!(p.backoff(1, 0.0), Duration::ZERO);
    assert_eq!(p.backoff(1, 0.5), Duration::from_micros(12_500));
    assert!(p.backoff(2, 0.999_999) < Duration::from_millis(75));
    assert_eq!(p.backoff(3, 0.5), Duration::from_micros(87_500));
    assert_eq!(p.backoff(10, 0.5), Duration::from_millis(125));
    assert_eq!(p.backoff(64, 1.0), Duration::from_millis(250));
}

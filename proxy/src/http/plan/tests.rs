use super::*;
use crate::router::{MaxStreamDuration, RetryOn, RetryPolicy};
use http::HeaderValue;

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
        .collect()
}

fn policy(timeout: Option<u64>) -> RoutePolicy {
    RoutePolicy {
        timeout: timeout.map(Duration::from_millis),
        ..RoutePolicy::default()
    }
}

const IDLE: Option<Duration> = Some(Duration::from_secs(300));

#[test]
fn the_route_timeout_and_the_listener_idle_timeout_apply_by_default() {
    let t = timeouts(&policy(Some(1500)), IDLE, &HeaderMap::new());
    assert_eq!(
        t,
        Timeouts {
            total: Some(Duration::from_millis(1500)),
            per_try: None,
            idle: IDLE,
            total_from_grpc: false,
        }
    );
}

#[test]
fn the_caller_may_set_or_disable_the_timeout_by_header() {
    let h = headers(&[("x-envoy-upstream-rq-timeout-ms", "200")]);
    assert_eq!(
        timeouts(&policy(None), IDLE, &h).total,
        Some(Duration::from_millis(200))
    );
    let h = headers(&[("x-envoy-upstream-rq-timeout-ms", "0")]);
    assert_eq!(timeouts(&policy(Some(100)), IDLE, &h).total, None);
    let h = headers(&[("x-envoy-upstream-rq-timeout-ms", "soon")]);
    assert_eq!(
        timeouts(&policy(Some(100)), IDLE, &h).total,
        Some(Duration::from_millis(100)),
        "an unreadable header is ignored"
    );
}

#[test]
fn grpc_timeout_counts_only_when_the_route_honours_it() {
    let h = headers(&[("grpc-timeout", "2S")]);
    assert_eq!(timeouts(&policy(None), IDLE, &h).total, None);
    let honour = |cap_ms: u64| RoutePolicy {
        max_stream_duration: MaxStreamDuration {
            grpc_timeout_header_max: Some(Duration::from_millis(cap_ms)),
            ..MaxStreamDuration::default()
        },
        ..policy(None)
    };
    assert_eq!(
        timeouts(&honour(0), IDLE, &h).total,
        Some(Duration::from_secs(2))
    );
    assert!(timeouts(&honour(0), IDLE, &h).total_from_grpc);
    let legacy = RoutePolicy {
        max_stream_duration: MaxStreamDuration {
            legacy_grpc_timeout_max: Some(Duration::from_secs(4)),
            ..MaxStreamDuration::default()
        },
        ..policy(Some(4000))
    };
    let t = timeouts(&legacy, IDLE, &h);
    assert_eq!(t.total, Some(Duration::from_secs(2)));
    assert!(
        !t.total_from_grpc,
        "the deprecated form sets the route timeout"
    );
    assert_eq!(
        timeouts(&honour(500), IDLE, &h).total,
        Some(Duration::from_millis(500)),
        "capped"
    );
}

#[test]
fn per_try_timeouts_shorter_than_the_total_only() {
    let retry = |ms| RetryPolicy {
        on: RetryOn::FIVE_XX,
        num_retries: 1,
        per_try_timeout: Some(Duration::from_millis(ms)),
        retriable_status_codes: Box::default(),
        base_interval: Duration::from_millis(25),
        max_interval: Duration::from_millis(250),
        avoid_previous_hosts: false,
        host_selection_max_attempts: 1,
    };
    let p = RoutePolicy {
        retry: Some(Arc::new(retry(100))),
        ..policy(Some(1000))
    };
    assert_eq!(
        timeouts(&p, IDLE, &HeaderMap::new()).per_try,
        Some(Duration::from_millis(100))
    );
    let p = RoutePolicy {
        retry: Some(Arc::new(retry(2000))),
        ..policy(Some(1000))
    };
    assert_eq!(timeouts(&p, IDLE, &HeaderMap::new()).per_try, None);
}

#[test]
fn a_route_idle_timeout_overrides_the_listener_and_zero_disables_it() {
    let p = RoutePolicy {
        idle_timeout: Some(Duration::from_secs(10)),
        ..policy(None)
    };
    assert_eq!(
        timeouts(&p, IDLE, &HeaderMap::new()).idle,
        Some(Duration::from_secs(10))
    );
    let p = RoutePolicy {
        idle_timeout: Some(Duration::ZERO),
        ..policy(None)
    };
    assert_eq!(timeouts(&p, IDLE, &HeaderMap::new()).idle, None);
}

#[test]
fn grpc_timeout_units() {
    let parse = |v: &'static str| parse_grpc_timeout(&HeaderValue::from_static(v));
    assert_eq!(parse("1H"), Some(Duration::from_secs(3600)));
    assert_eq!(parse("2M"), Some(Duration::from_secs(120)));
    assert_eq!(parse("3S"), Some(Duration::from_secs(3)));
    assert_eq!(parse("40m"), Some(Duration::from_millis(40)));
    assert_eq!(parse("5u"), Some(Duration::from_micros(5)));
    assert_eq!(parse("6n"), Some(Duration::from_nanos(6)));
    assert_eq!(parse("123456789S"), None, "at most 8 digits");
    assert_eq!(parse("1x"), None);
    assert_eq!(parse("S"), None);
}

//! The cases checked against Envoy 1.40 with the same configuration (a client on 127.0.0.1;
//! `x-forwarded-for` as sent).

use super::*;

fn cidr(addr: &str, prefix: u8) -> Cidr {
    Cidr {
        addr: addr.parse().unwrap(),
        prefix,
    }
}

/// weftd's local mode: loopback and RFC 1918.
fn local_ranges() -> std::sync::Arc<[Cidr]> {
    vec![
        cidr("127.0.0.0", 8),
        cidr("::1", 128),
        cidr("10.0.0.0", 8),
        cidr("172.16.0.0", 12),
        cidr("192.168.0.0", 16),
    ]
    .into()
}

fn policy(use_remote_address: bool, internal: std::sync::Arc<[Cidr]>) -> Forwarding {
    Forwarding {
        use_remote_address,
        internal,
        preserve_external_request_id: false,
    }
}

/// A request with every header the decision touches, plus `xff` when given.
fn request(xff: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("x-envoy-force-trace", "1"),
        ("x-envoy-upstream-rq-timeout-ms", "1234"),
        ("x-envoy-retry-on", "5xx"),
        ("x-forwarded-proto", "https"),
        ("x-envoy-external-address", "9.9.9.9"),
        ("x-envoy-internal", "true"),
        ("x-envoy-decorator-operation", "op"),
        ("x-request-id", "abc"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    if let Some(x) = xff {
        h.insert("x-forwarded-for", x.parse().unwrap());
    }
    h
}

fn get<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name).map(|v| v.to_str().unwrap())
}

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[test]
fn not_the_edge_and_no_ranges_nothing_is_internal_and_xff_is_untouched() {
    for xff in [None, Some("10.1.2.3")] {
        let mut h = request(xff);
        assert!(!sanitize(&mut h, &policy(false, [].into()), LOOPBACK));
        assert_eq!(get(&h, "x-forwarded-for"), xff);
        for gone in [
            "x-envoy-force-trace",
            "x-envoy-upstream-rq-timeout-ms",
            "x-envoy-retry-on",
            "x-envoy-internal",
        ] {
            assert!(!h.contains_key(gone), "{gone}");
        }
        // Not the edge: what only an edge sets or replaces stays as it came.
        assert_eq!(get(&h, "x-forwarded-proto"), Some("https"));
        assert_eq!(get(&h, "x-envoy-external-address"), Some("9.9.9.9"));
        assert_eq!(get(&h, "x-envoy-decorator-operation"), Some("op"));
        assert_eq!(get(&h, "x-request-id"), Some("abc"));
    }
}

#[test]
fn not_the_edge_the_one_forwarded_address_decides() {
    let p = policy(false, local_ranges());
    let mut h = request(Some("10.1.2.3"));
    assert!(sanitize(&mut h, &p, IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8))));
    assert_eq!(get(&h, "x-envoy-force-trace"), Some("1"));
    assert_eq!(get(&h, "x-envoy-upstream-rq-timeout-ms"), Some("1234"));
    assert_eq!(get(&h, "x-envoy-internal"), Some("true"));
    assert_eq!(get(&h, "x-forwarded-for"), Some("10.1.2.3"));
    for xff in [None, Some("8.8.8.8"), Some("10.1.2.3, 10.0.0.1")] {
        let mut h = request(xff);
        assert!(!sanitize(&mut h, &p, LOOPBACK), "{xff:?}");
        assert!(!h.contains_key("x-envoy-force-trace"));
        assert!(!h.contains_key("x-envoy-internal"));
    }
}

#[test]
fn at_the_edge_an_internal_peer_without_xff_is_internal() {
    let peer = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7));
    let mut h = request(None);
    assert!(sanitize(&mut h, &policy(true, local_ranges()), peer));
    assert_eq!(get(&h, "x-forwarded-for"), Some("10.0.0.7"));
    assert_eq!(get(&h, "x-forwarded-proto"), Some("http"));
    assert_eq!(get(&h, "x-envoy-internal"), Some("true"));
    assert_eq!(get(&h, "x-envoy-force-trace"), Some("1"));
    assert_eq!(get(&h, "x-request-id"), Some("abc"));
    assert_eq!(get(&h, "x-envoy-decorator-operation"), Some("op"));
}

#[test]
fn at_the_edge_an_external_request_is_sanitized_and_marked() {
    let peer = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7));
    // External because of the forwarded addresses, or because no range is configured.
    for (xff, ranges, appended) in [
        (Some("10.1.2.3"), local_ranges(), "10.1.2.3,10.0.0.7"),
        (None, [].into(), "10.0.0.7"),
    ] {
        let mut h = request(xff);
        assert!(!sanitize(&mut h, &policy(true, ranges), peer));
        assert_eq!(get(&h, "x-forwarded-for"), Some(appended));
        assert_eq!(get(&h, "x-forwarded-proto"), Some("http"));
        assert_eq!(get(&h, "x-envoy-external-address"), Some("10.0.0.7"));
        for gone in [
            "x-envoy-force-trace",
            "x-envoy-upstream-rq-timeout-ms",
            "x-envoy-internal",
            "x-envoy-decorator-operation",
            "x-request-id",
        ] {
            assert!(!h.contains_key(gone), "{gone}");
        }
    }
    let mut keep = policy(true, [].into());
    keep.preserve_external_request_id = true;
    let mut h = request(None);
    sanitize(&mut h, &keep, peer);
    assert_eq!(get(&h, "x-request-id"), Some("abc"));
}

#[test]
fn a_loopback_peer_is_appended_as_the_proxys_own_address() {
    let mut h = HeaderMap::new();
    assert!(sanitize(&mut h, &policy(true, local_ranges()), LOOPBACK));
    let appended: IpAddr = get(&h, "x-forwarded-for").unwrap().parse().unwrap();
    assert_eq!(appended, local_address());
    // The loopback peer itself decides internal.
    assert_eq!(get(&h, "x-envoy-internal"), Some("true"));
}

#[test]
fn ranges_match_by_prefix() {
    let ranges = [
        cidr("172.16.0.0", 12),
        cidr("127.0.0.1", 32),
        cidr("fd00::", 8),
    ];
    for (ip, internal) in [
        ("172.16.0.1", true),
        ("172.31.255.255", true),
        ("172.32.0.1", false),
        ("127.0.0.1", true),
        ("127.0.0.2", false),
        ("fd12:3456::1", true),
        ("fc00::1", false),
        ("::ffff:172.20.0.1", true),
        ("8.8.8.8", false),
    ] {
        assert_eq!(is_internal(&ranges, ip.parse().unwrap()), internal, "{ip}");
    }
    assert!(is_internal(
        &[cidr("0.0.0.0", 0)],
        "1.2.3.4".parse().unwrap()
    ));
}

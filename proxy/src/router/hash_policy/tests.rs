use super::*;
use http::{HeaderMap, Method, Uri};

struct Req {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

fn req(uri: &str, headers: &[(&str, &str)]) -> Req {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            http::header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    Req {
        method: Method::GET,
        uri: uri.parse().expect("uri"),
        headers: map,
    }
}

impl Req {
    fn hash(&self, policies: &[HashPolicy]) -> RequestHash {
        self.hash_from(policies, "10.1.2.3".parse().expect("ip"))
    }

    fn hash_from(&self, policies: &[HashPolicy], peer: IpAddr) -> RequestHash {
        let view = RequestView::new(&self.method, &self.uri, &self.headers);
        request_hash(policies, &view, peer)
    }
}

fn policy(kind: HashKind) -> HashPolicy {
    HashPolicy {
        kind,
        terminal: false,
    }
}

fn header(name: &str) -> HashPolicy {
    policy(HashKind::Header {
        source: HeaderSource::from_name(name).expect("header name"),
        rewrite: None,
    })
}

fn cookie(name: &str, ttl: Option<u64>, path: &str) -> HashPolicy {
    policy(HashKind::Cookie(
        CookiePolicy::new(name, ttl.map(Duration::from_secs), path).expect("cookie policy"),
    ))
}

fn x(s: &str) -> u64 {
    xxh64(s.as_bytes(), 0)
}

#[test]
fn xxhash64_is_the_reference_algorithm() {
    // Published xxHash64 test vectors (seed 0): Envoy hashes with the same function, so the
    // same request hashes to the same value in weft-proxy and in Envoy.
    assert_eq!(xxh64(b"", 0), 0xef46_db37_51d8_e999);
    assert_eq!(xxh64(b"abc", 0), 0x44bc_2cf5_ad77_0999);
}

#[test]
fn header_value_is_hashed() {
    let r = req("/", &[("x-user", "alice")]);
    assert_eq!(r.hash(&[header("x-user")]).hash, Some(x("alice")));
    assert_eq!(r.hash(&[header("X-User")]).hash, Some(x("alice")));
    assert_eq!(r.hash(&[header("x-other")]).hash, None);
    assert_eq!(r.hash(&[]), RequestHash::default());
}

#[test]
fn several_values_of_a_header_hash_the_same_in_any_order() {
    let ab = req("/", &[("x-k", "b"), ("x-k", "a")]);
    let ba = req("/", &[("x-k", "a"), ("x-k", "b")]);
    let h = ab.hash(&[header("x-k")]).hash;
    assert_eq!(h, ba.hash(&[header("x-k")]).hash);
    // Sorted and streamed: the hash of "a" then "b".
    assert_eq!(h, Some(x("ab")));

    // More values than fit on the stack.
    let many: Vec<(&str, &str)> = ["j", "c", "a", "i", "e", "b", "h", "d", "g", "f"]
        .iter()
        .map(|v| ("x-k", *v))
        .collect();
    assert_eq!(
        req("/", &many).hash(&[header("x-k")]).hash,
        Some(x("abcdefghij"))
    );
}

#[test]
fn pseudo_headers_come_from_the_request_line() {
    let r = req("http://reviews:9080/api?x=1", &[]);
    assert_eq!(
        r.hash(&[header(":authority")]).hash,
        Some(x("reviews:9080"))
    );
    assert_eq!(r.hash(&[header(":path")]).hash, Some(x("/api?x=1")));
    assert_eq!(r.hash(&[header(":method")]).hash, Some(x("GET")));
    let no_host = req("/", &[]);
    assert_eq!(no_host.hash(&[header(":authority")]).hash, None);
}

#[test]
fn header_values_can_be_rewritten_before_hashing() {
    let rewrite = RegexRewrite {
        regex: Regex::new(r"^/users/([0-9]+)/.*$").expect("regex"),
        replacement: "${1}".into(),
    };
    let p = policy(HashKind::Header {
        source: HeaderSource::from_name(":path").expect("name"),
        rewrite: Some(rewrite),
    });
    let a = req("/users/42/orders", &[]);
    let b = req("/users/42/profile", &[]);
    assert_eq!(a.hash(std::slice::from_ref(&p)).hash, Some(x("42")));
    assert_eq!(b.hash(&[p]).hash, Some(x("42")));
}

#[test]
fn cookie_value_is_hashed() {
    let p = cookie("session", None, "");
    let r = req("/", &[("cookie", "theme=dark; session=abc123; lang=en")]);
    assert_eq!(r.hash(std::slice::from_ref(&p)).hash, Some(x("abc123")));
    // Quoted values lose their quotes; later Cookie headers are read too.
    let r = req(
        "/",
        &[("cookie", "theme=dark"), ("cookie", "session=\"abc123\"")],
    );
    let out = r.hash(std::slice::from_ref(&p));
    assert_eq!(out.hash, Some(x("abc123")));
    assert_eq!(out.set_cookie, None);
    // A cookie whose name only ends like the wanted one does not count.
    let r = req("/", &[("cookie", "xsession=abc")]);
    assert_eq!(r.hash(&[p]).hash, None);
}

#[test]
fn an_absent_cookie_without_ttl_gives_no_hash() {
    let r = req("/", &[("cookie", "other=1")]);
    let out = r.hash(&[cookie("session", None, "/")]);
    assert_eq!(out, RequestHash::default());
}

#[test]
fn an_absent_cookie_with_ttl_is_generated_and_hashed() {
    let r = req("/", &[]);
    let peer: IpAddr = "10.1.2.3".parse().expect("ip");
    let out = r.hash_from(&[cookie("session", Some(3600), "/shop")], peer);
    let value = format!("{:016x}", x("10.1.2.3"));
    assert_eq!(out.hash, Some(x(&value)));
    assert_eq!(
        out.set_cookie.expect("set-cookie"),
        format!("session=\"{value}\"; Max-Age=3600; Path=/shop; HttpOnly").as_str()
    );

    // The client sends it back and hashes the same way, without a new cookie.
    let back = req("/", &[("cookie", &format!("session=\"{value}\""))]);
    let again = back.hash_from(&[cookie("session", Some(3600), "/shop")], peer);
    assert_eq!(again.hash, out.hash);
    assert_eq!(again.set_cookie, None);

    // A ttl of 0 makes a session cookie (no Max-Age); no path, no Path attribute.
    let out = r.hash_from(&[cookie("s", Some(0), "")], peer);
    assert_eq!(
        out.set_cookie.expect("set-cookie"),
        format!("s=\"{value}\"; HttpOnly").as_str()
    );
}

#[test]
fn cookie_policies_refuse_names_and_paths_that_break_the_header() {
    assert!(CookiePolicy::new("", None, "").is_err());
    assert!(CookiePolicy::new("a b", None, "").is_err());
    assert!(CookiePolicy::new("a;b", None, "").is_err());
    assert!(CookiePolicy::new("ok", None, "/a;b").is_err());
    assert!(CookiePolicy::new("ok", None, "/a\nb").is_err());
    assert!(CookiePolicy::new("session-id", None, "/a/b").is_ok());
}

#[test]
fn source_ip_is_hashed_as_text() {
    let r = req("/", &[]);
    let p = policy(HashKind::SourceIp);
    assert_eq!(
        r.hash_from(std::slice::from_ref(&p), "10.1.2.3".parse().expect("ip"))
            .hash,
        Some(x("10.1.2.3"))
    );
    assert_eq!(
        r.hash_from(&[p], "2001:db8::1".parse().expect("ip")).hash,
        Some(x("2001:db8::1"))
    );
}

#[test]
fn query_parameter_first_value_is_hashed() {
    let p = policy(HashKind::QueryParameter("user".into()));
    let r = req("/a?x=1&user=bob&user=eve", &[]);
    assert_eq!(r.hash(std::slice::from_ref(&p)).hash, Some(x("bob")));
    // As sent, not decoded; a bare name has the empty value.
    assert_eq!(
        req("/a?user=b%20b", &[])
            .hash(std::slice::from_ref(&p))
            .hash,
        Some(x("b%20b"))
    );
    assert_eq!(
        req("/a?user", &[]).hash(std::slice::from_ref(&p)).hash,
        Some(x(""))
    );
    assert_eq!(
        req("/a?username=bob", &[])
            .hash(std::slice::from_ref(&p))
            .hash,
        None
    );
    assert_eq!(req("/a", &[]).hash(&[p]).hash, None);
}

#[test]
fn hashes_combine_by_rotate_and_xor() {
    let r = req("/", &[("x-a", "1"), ("x-b", "2")]);
    let both = r.hash(&[header("x-a"), header("x-b")]).hash;
    assert_eq!(both, Some(x("1").rotate_left(1) ^ x("2")));
    // A policy whose input is absent is skipped.
    let skip = r
        .hash(&[header("x-a"), header("x-none"), header("x-b")])
        .hash;
    assert_eq!(skip, both);
    // The same policy twice does not cancel out.
    let twice = r.hash(&[header("x-a"), header("x-a")]).hash;
    assert_eq!(twice, Some(x("1").rotate_left(1) ^ x("1")));
    assert_ne!(twice, Some(0));
}

#[test]
fn terminal_stops_once_a_hash_exists() {
    let r = req("/", &[("x-b", "2")]);
    let terminal = |name: &str| HashPolicy {
        terminal: true,
        ..header(name)
    };
    // The terminal policy has no input: evaluation goes on to the fallback.
    let out = r.hash(&[terminal("x-a"), header("x-b")]).hash;
    assert_eq!(out, Some(x("2")));
    // It has one: the rest is skipped.
    let r = req("/", &[("x-a", "1"), ("x-b", "2")]);
    let out = r.hash(&[terminal("x-a"), header("x-b")]).hash;
    assert_eq!(out, Some(x("1")));
    // A hash from an earlier policy also satisfies a later terminal one.
    let out = r
        .hash(&[header("x-a"), terminal("x-none"), header("x-b")])
        .hash;
    assert_eq!(out, Some(x("1")));
}

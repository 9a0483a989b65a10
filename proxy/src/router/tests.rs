use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::*;

/// A request owned by the test, viewed the way the proxy views a real one.
struct Req {
    method: Method,
    authority: String,
    path: String,
    headers: HeaderMap,
}

fn get(authority: &str, path: &str) -> Req {
    Req {
        method: Method::GET,
        authority: authority.into(),
        path: path.into(),
        headers: HeaderMap::new(),
    }
}

impl Req {
    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
        self
    }

    fn method(mut self, m: Method) -> Self {
        self.method = m;
        self
    }

    fn view(&self) -> RequestView<'_> {
        RequestView {
            authority: &self.authority,
            path_and_query: &self.path,
            method: &self.method,
            headers: &self.headers,
        }
    }
}

fn route(name: &str, matcher: RouteMatcher) -> Route {
    Route {
        name: name.into(),
        matcher,
        action: RouteAction::Cluster(ClusterTarget::new(name)),
        policy: RoutePolicy::default(),
    }
}

fn vh(name: &str, domains: &[&str], routes: Vec<Route>) -> VirtualHost {
    VirtualHost {
        name: name.into(),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        routes,
    }
}

/// One virtual host per domain list, each with a single catch-all route named after the host.
fn hosts(domains: &[(&str, &[&str])]) -> RouteTable {
    let vhs = domains
        .iter()
        .map(|(name, d)| {
            vh(
                name,
                d,
                vec![route(
                    name,
                    RouteMatcher::new(PathMatcher::prefix("/", true)),
                )],
            )
        })
        .collect();
    RouteTable::new("t".into(), vhs, false).expect("valid table")
}

fn host_for(table: &RouteTable, authority: &str) -> Option<String> {
    table.virtual_host(authority).map(|vh| vh.name.clone())
}

/// A table with one virtual host `*` holding the given routes.
fn table(routes: Vec<Route>) -> RouteTable {
    RouteTable::new("t".into(), vec![vh("any", &["*"], routes)], false).expect("valid table")
}

fn matched(t: &RouteTable, req: &Req) -> Option<String> {
    t.find(&req.view()).map(|r| r.name.to_string())
}

fn only(path: PathMatcher) -> RouteTable {
    table(vec![route("r", RouteMatcher::new(path))])
}

fn hit(t: &RouteTable, req: Req) -> bool {
    t.find(&req.view()).is_some()
}

// ---- virtual host selection ----

#[test]
fn domain_search_order() {
    let t = hosts(&[
        ("any", &["*"]),
        ("prefix", &["www.*"]),
        ("suffix", &["*.foo.com"]),
        ("longer-suffix", &["*.bar.foo.com"]),
        ("exact", &["www.foo.com"]),
        ("dash", &["*-bar.example.com"]),
    ]);
    assert_eq!(host_for(&t, "www.foo.com").as_deref(), Some("exact"));
    assert_eq!(
        host_for(&t, "a.bar.foo.com").as_deref(),
        Some("longer-suffix")
    );
    assert_eq!(host_for(&t, "x.foo.com").as_deref(), Some("suffix"));
    // Both `*.foo.com` and `www.*` match: suffix wildcards come first.
    assert_eq!(host_for(&t, "www.baz.foo.com").as_deref(), Some("suffix"));
    assert_eq!(host_for(&t, "www.other.org").as_deref(), Some("prefix"));
    assert_eq!(host_for(&t, "baz-bar.example.com").as_deref(), Some("dash"));
    // A wildcard never stands for the empty string.
    assert_eq!(host_for(&t, "-bar.example.com").as_deref(), Some("any"));
    assert_eq!(host_for(&t, ".foo.com").as_deref(), Some("any"));
    assert_eq!(host_for(&t, "elsewhere").as_deref(), Some("any"));
    assert_eq!(host_for(&t, "").as_deref(), Some("any"));
}

#[test]
fn longest_prefix_wildcard_wins() {
    let t = hosts(&[("short", &["api.*"]), ("long", &["api.v2.*"])]);
    assert_eq!(host_for(&t, "api.v2.example").as_deref(), Some("long"));
    assert_eq!(host_for(&t, "api.v1.example").as_deref(), Some("short"));
    assert_eq!(host_for(&t, "web.example"), None);
}

#[test]
fn host_is_case_insensitive() {
    let t = hosts(&[
        ("exact", &["Reviews.Default"]),
        ("suffix", &["*.Example.COM"]),
    ]);
    assert_eq!(host_for(&t, "REVIEWS.default").as_deref(), Some("exact"));
    assert_eq!(host_for(&t, "reviews.default").as_deref(), Some("exact"));
    assert_eq!(host_for(&t, "API.example.com").as_deref(), Some("suffix"));
    // Longer than the stack buffer: still lowered correctly.
    let long = format!("{}.EXAMPLE.com", "A".repeat(400));
    assert_eq!(host_for(&t, &long).as_deref(), Some("suffix"));
}

#[test]
fn port_is_part_of_the_host() {
    let t = hosts(&[("with-port", &["reviews:9080"]), ("bare", &["ratings"])]);
    assert_eq!(host_for(&t, "reviews:9080").as_deref(), Some("with-port"));
    assert_eq!(host_for(&t, "reviews"), None);
    assert_eq!(host_for(&t, "ratings").as_deref(), Some("bare"));
    assert_eq!(host_for(&t, "ratings:9080"), None);
}

#[test]
fn ignore_port_in_host_matching() {
    let vhs = vec![
        vh("reviews", &["reviews"], vec![]),
        vh("v6", &["[::1]"], vec![]),
    ];
    let t = RouteTable::new("t".into(), vhs, true).expect("valid table");
    assert_eq!(host_for(&t, "reviews:9080").as_deref(), Some("reviews"));
    assert_eq!(host_for(&t, "reviews").as_deref(), Some("reviews"));
    assert_eq!(host_for(&t, "[::1]:80").as_deref(), Some("v6"));
    assert_eq!(host_for(&t, "[::1]").as_deref(), Some("v6"));
}

#[test]
fn duplicate_domains_are_rejected() {
    let vhs = vec![
        vh("a", &["x.com", "*"], vec![]),
        vh("b", &["y.com", "X.com"], vec![]),
    ];
    let err = RouteTable::new("t".into(), vhs, false).unwrap_err();
    assert_eq!(
        err,
        DuplicateDomain {
            virtual_host: 1,
            domain: 1,
            value: "X.com".into()
        }
    );
}

#[test]
fn no_virtual_host_no_route() {
    let t = hosts(&[("exact", &["a.com"])]);
    assert!(t.find(&get("b.com", "/").view()).is_none());
}

// ---- route order and path rules ----

#[test]
fn first_matching_route_wins() {
    let t = table(vec![
        route(
            "catch-all",
            RouteMatcher::new(PathMatcher::prefix("/", true)),
        ),
        route("exact", RouteMatcher::new(PathMatcher::exact("/a", true))),
    ]);
    assert_eq!(matched(&t, &get("h", "/a")).as_deref(), Some("catch-all"));

    let t = table(vec![
        route("exact", RouteMatcher::new(PathMatcher::exact("/a", true))),
        route(
            "catch-all",
            RouteMatcher::new(PathMatcher::prefix("/", true)),
        ),
    ]);
    assert_eq!(matched(&t, &get("h", "/a")).as_deref(), Some("exact"));
    assert_eq!(matched(&t, &get("h", "/b")).as_deref(), Some("catch-all"));
}

#[test]
fn prefix_sees_the_whole_path_including_query() {
    let t = only(PathMatcher::prefix("/api", true));
    assert!(hit(&t, get("h", "/api")));
    assert!(hit(&t, get("h", "/apiv2/x")));
    assert!(!hit(&t, get("h", "/ap")));
    let t = only(PathMatcher::prefix("/search?q=", true));
    assert!(hit(&t, get("h", "/search?q=rust")));
}

#[test]
fn exact_path_ignores_query_and_fragment() {
    let t = only(PathMatcher::exact("/a", true));
    assert!(hit(&t, get("h", "/a")));
    assert!(hit(&t, get("h", "/a?x=1")));
    assert!(hit(&t, get("h", "/a#top")));
    assert!(!hit(&t, get("h", "/a/")));
    assert!(!hit(&t, get("h", "/ab")));
}

#[test]
fn regex_must_match_the_whole_path_without_query() {
    let t = only(PathMatcher::regex("/items/[0-9]+").expect("regex"));
    assert!(hit(&t, get("h", "/items/42")));
    assert!(hit(&t, get("h", "/items/42?view=full")));
    assert!(!hit(&t, get("h", "/items/42/reviews")));
    assert!(!hit(&t, get("h", "/v1/items/42")));
    // Alternation stays inside the anchors.
    let t = only(PathMatcher::regex("/a|/b").expect("regex"));
    assert!(hit(&t, get("h", "/b")));
    assert!(!hit(&t, get("h", "/abc")));
    assert!(!hit(&t, get("h", "/x/b")));
}

#[test]
fn separated_prefix_stops_at_segment_boundaries() {
    let t = only(PathMatcher::separated_prefix("/api/dev", true));
    for ok in [
        "/api/dev",
        "/api/dev/",
        "/api/dev/v1",
        "/api/dev?param=true",
    ] {
        assert!(hit(&t, get("h", ok)), "{ok}");
    }
    for no in ["/api/developer", "/api/de", "/api"] {
        assert!(!hit(&t, get("h", no)), "{no}");
    }
}

#[test]
fn case_insensitive_paths() {
    let t = only(PathMatcher::prefix("/API", false));
    assert!(hit(&t, get("h", "/api/x")));
    assert!(hit(&t, get("h", "/Api/x")));
    let t = only(PathMatcher::exact("/Login", false));
    assert!(hit(&t, get("h", "/LOGIN?next=/")));
    let t = only(PathMatcher::separated_prefix("/Docs", false));
    assert!(hit(&t, get("h", "/docs/intro")));
    assert!(!hit(&t, get("h", "/docsx")));
    let t = only(PathMatcher::prefix("/API", true));
    assert!(!hit(&t, get("h", "/api/x")));
}

// ---- headers ----

fn with_headers(headers: Vec<HeaderMatcher>) -> RouteTable {
    let mut m = RouteMatcher::new(PathMatcher::prefix("/", true));
    m.headers = headers;
    table(vec![route("r", m)])
}

fn header(name: &str, rule: HeaderMatch) -> HeaderMatcher {
    HeaderMatcher {
        source: HeaderSource::from_name(name).expect("header name"),
        rule,
        invert: false,
        treat_missing_as_empty: false,
    }
}

fn value(m: StringMatcher) -> HeaderMatch {
    HeaderMatch::Value(m)
}

#[test]
fn header_exact_prefix_suffix_contains() {
    let t = with_headers(vec![header(
        "x-version",
        value(StringMatcher::exact("v1", false)),
    )]);
    assert!(hit(&t, get("h", "/").header("x-version", "v1")));
    assert!(!hit(&t, get("h", "/").header("x-version", "v12")));
    assert!(!hit(&t, get("h", "/").header("x-version", "V1")));
    assert!(!hit(&t, get("h", "/")));

    let t = with_headers(vec![header(
        "x-version",
        value(StringMatcher::exact("v1", true)),
    )]);
    assert!(hit(&t, get("h", "/").header("x-version", "V1")));

    let t = with_headers(vec![header(
        "user",
        value(StringMatcher::prefix("Ja", true)),
    )]);
    assert!(hit(&t, get("h", "/").header("user", "jason")));
    assert!(!hit(&t, get("h", "/").header("user", "j")));

    let t = with_headers(vec![header(
        "user",
        value(StringMatcher::suffix("son", false)),
    )]);
    assert!(hit(&t, get("h", "/").header("user", "jason")));
    assert!(!hit(&t, get("h", "/").header("user", "jasoN")));

    let t = with_headers(vec![header(
        "cookie",
        value(StringMatcher::contains("Beta=1", true)),
    )]);
    assert!(hit(&t, get("h", "/").header("cookie", "a=b; beta=1; c=d")));
    assert!(!hit(&t, get("h", "/").header("cookie", "a=b")));
}

#[test]
fn header_regex_is_a_full_match() {
    let t = with_headers(vec![header(
        "x-id",
        value(StringMatcher::regex(r"\d{3}").expect("regex")),
    )]);
    assert!(hit(&t, get("h", "/").header("x-id", "123")));
    assert!(!hit(&t, get("h", "/").header("x-id", "1234")));
    assert!(!hit(&t, get("h", "/").header("x-id", "a123")));
}

#[test]
fn header_present_and_absent() {
    let t = with_headers(vec![header("x-debug", HeaderMatch::Present(true))]);
    assert!(hit(&t, get("h", "/").header("x-debug", "")));
    assert!(!hit(&t, get("h", "/")));

    let t = with_headers(vec![header("x-debug", HeaderMatch::Present(false))]);
    assert!(!hit(&t, get("h", "/").header("x-debug", "1")));
    assert!(hit(&t, get("h", "/")));
}

#[test]
fn header_invert() {
    let mut m = header(
        "x-id",
        value(StringMatcher::regex(r"\d{3}").expect("regex")),
    );
    m.invert = true;
    let t = with_headers(vec![m]);
    assert!(hit(&t, get("h", "/").header("x-id", "1234")));
    assert!(!hit(&t, get("h", "/").header("x-id", "123")));
    // An absent header is ignored, never a match, even inverted.
    assert!(!hit(&t, get("h", "/")));

    let mut m = header("x-debug", HeaderMatch::Present(true));
    m.invert = true;
    let t = with_headers(vec![m]);
    assert!(hit(&t, get("h", "/")));
    assert!(!hit(&t, get("h", "/").header("x-debug", "1")));
}

#[test]
fn header_missing_treated_as_empty() {
    let mut m = header("x-empty", value(StringMatcher::regex("^$").expect("regex")));
    m.treat_missing_as_empty = true;
    let t = with_headers(vec![m]);
    assert!(hit(&t, get("h", "/")));
    assert!(!hit(&t, get("h", "/").header("x-empty", "v")));

    let mut m = header("x-n", HeaderMatch::Range { start: 0, end: 10 });
    m.treat_missing_as_empty = true;
    m.invert = true;
    let t = with_headers(vec![m]);
    assert!(
        hit(&t, get("h", "/")),
        "empty is not in range, so inverted it matches"
    );
}

#[test]
fn header_range() {
    let t = with_headers(vec![header(
        "x-n",
        HeaderMatch::Range { start: -10, end: 0 },
    )]);
    assert!(hit(&t, get("h", "/").header("x-n", "-1")));
    for no in ["0", "somestring", "10.9", "-1somestring", ""] {
        assert!(!hit(&t, get("h", "/").header("x-n", no)), "{no}");
    }
}

#[test]
fn multiple_header_values_are_joined_with_commas() {
    let t = with_headers(vec![header(
        "x-tag",
        value(StringMatcher::exact("a,b", false)),
    )]);
    assert!(hit(
        &t,
        get("h", "/").header("x-tag", "a").header("x-tag", "b")
    ));
    assert!(!hit(&t, get("h", "/").header("x-tag", "a")));
}

#[test]
fn pseudo_headers_come_from_the_request() {
    let t = with_headers(vec![header(
        ":method",
        value(StringMatcher::exact("POST", false)),
    )]);
    assert!(hit(&t, get("h", "/").method(Method::POST)));
    assert!(!hit(&t, get("h", "/")));

    let t = with_headers(vec![header(
        ":authority",
        value(StringMatcher::prefix("api.", false)),
    )]);
    assert!(hit(&t, get("api.example", "/")));
    assert!(!hit(&t, get("www.example", "/")));

    let t = with_headers(vec![header(
        ":path",
        value(StringMatcher::suffix("?x=1", false)),
    )]);
    assert!(hit(&t, get("h", "/a?x=1")));

    let t = with_headers(vec![header(
        ":scheme",
        value(StringMatcher::exact("http", false)),
    )]);
    assert!(hit(&t, get("h", "/")));
}

#[test]
fn all_conditions_must_hold() {
    let t = with_headers(vec![
        header("a", HeaderMatch::Present(true)),
        header("b", value(StringMatcher::exact("1", false))),
    ]);
    assert!(hit(&t, get("h", "/").header("a", "x").header("b", "1")));
    assert!(!hit(&t, get("h", "/").header("a", "x")));
    assert!(!hit(&t, get("h", "/").header("b", "1")));
}

// ---- query parameters and gRPC ----

fn with_query(params: Vec<QueryMatcher>) -> RouteTable {
    let mut m = RouteMatcher::new(PathMatcher::prefix("/", true));
    m.query_parameters = params;
    table(vec![route("r", m)])
}

fn param(name: &str, rule: QueryMatch) -> QueryMatcher {
    QueryMatcher {
        name: name.into(),
        rule,
    }
}

#[test]
fn query_parameter_value_and_presence() {
    let t = with_query(vec![param(
        "debug",
        QueryMatch::Value(StringMatcher::exact("true", false)),
    )]);
    assert!(hit(&t, get("h", "/?debug=true")));
    assert!(hit(&t, get("h", "/x?a=1&debug=true&b")));
    assert!(!hit(&t, get("h", "/?debug=false")));
    assert!(!hit(&t, get("h", "/?debugx=true")));
    assert!(!hit(&t, get("h", "/debug=true")));
    // The first occurrence decides.
    assert!(!hit(&t, get("h", "/?debug=no&debug=true")));
    // A fragment is not part of the query.
    assert!(!hit(&t, get("h", "/#debug=true")));
    assert!(!hit(&t, get("h", "/?x=1#&debug=true")));

    let t = with_query(vec![param("flag", QueryMatch::Present(true))]);
    assert!(hit(&t, get("h", "/?flag")));
    assert!(hit(&t, get("h", "/?flag=")));
    assert!(!hit(&t, get("h", "/?other")));

    let t = with_query(vec![param("flag", QueryMatch::Present(false))]);
    assert!(hit(&t, get("h", "/?other")));
    assert!(!hit(&t, get("h", "/?flag")));
}

#[test]
fn bare_query_name_has_the_empty_value() {
    let t = with_query(vec![param(
        "q",
        QueryMatch::Value(StringMatcher::exact("", false)),
    )]);
    assert!(hit(&t, get("h", "/?q")));
    assert!(!hit(&t, get("h", "/?q=1")));
}

#[test]
fn query_values_are_not_decoded() {
    let t = with_query(vec![param(
        "q",
        QueryMatch::Value(StringMatcher::exact("a b", false)),
    )]);
    assert!(!hit(&t, get("h", "/?q=a%20b")));
}

#[test]
fn grpc_requires_a_grpc_content_type() {
    let mut m = RouteMatcher::new(PathMatcher::prefix("/", true));
    m.grpc = true;
    let t = table(vec![route("r", m)]);
    assert!(hit(
        &t,
        get("h", "/pkg.Svc/M").header("content-type", "application/grpc")
    ));
    assert!(hit(
        &t,
        get("h", "/").header("content-type", "application/grpc+proto")
    ));
    assert!(hit(
        &t,
        get("h", "/").header("content-type", "application/grpc;charset=utf-8")
    ));
    assert!(!hit(
        &t,
        get("h", "/").header("content-type", "application/grpc-web")
    ));
    assert!(!hit(
        &t,
        get("h", "/").header("content-type", "application/json")
    ));
    assert!(!hit(&t, get("h", "/")));
}

// ---- weighted clusters ----

fn weighted(ws: &[(&str, u32)]) -> WeightedClusters {
    WeightedClusters::new(
        ws.iter()
            .map(|(n, w)| (ClusterTarget::new(n), *w))
            .collect(),
    )
    .expect("valid weights")
}

fn counts(w: &WeightedClusters, picks: impl Iterator<Item = u64>) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = w
        .clusters()
        .iter()
        .map(|c| (c.target.name.to_string(), 0))
        .collect();
    for r in picks {
        let name = &w.pick(r).name;
        if let Some(slot) = out.iter_mut().find(|(n, _)| **n == **name) {
            slot.1 += 1;
        }
    }
    out
}

#[test]
fn weighted_pick_gives_each_cluster_its_weight() {
    let w = weighted(&[("v1", 70), ("v2", 20), ("v3", 10)]);
    assert_eq!(w.total(), 100);
    assert_eq!(
        counts(&w, 0..w.total()),
        vec![("v1".into(), 70), ("v2".into(), 20), ("v3".into(), 10)]
    );
    // Slices follow configuration order.
    assert_eq!(&*w.pick(0).name, "v1");
    assert_eq!(&*w.pick(69).name, "v1");
    assert_eq!(&*w.pick(70).name, "v2");
    assert_eq!(&*w.pick(99).name, "v3");
}

#[test]
fn weighted_pick_skips_zero_weights_and_wraps() {
    let w = weighted(&[("off", 0), ("a", 1), ("also-off", 0), ("b", 3)]);
    assert_eq!(
        counts(&w, 0..w.total()),
        vec![
            ("off".into(), 0),
            ("a".into(), 1),
            ("also-off".into(), 0),
            ("b".into(), 3)
        ]
    );
    // Out-of-range input wraps instead of panicking.
    assert_eq!(&*w.pick(4).name, "a");
    assert_eq!(&*w.pick(u64::MAX).name, "b");
}

#[test]
fn weighted_pick_random_uses_every_cluster() {
    let w = weighted(&[("a", 1), ("b", 1)]);
    let a = (0..2000)
        .filter(|_| &*w.pick_random().target.name == "a")
        .count();
    assert!((800..1200).contains(&a), "{a} of 2000 went to a");
}

#[test]
fn weighted_rejects_empty_and_zero_total() {
    assert_eq!(
        WeightedClusters::new(vec![]).unwrap_err(),
        WeightError::Empty
    );
    let zero = vec![(ClusterTarget::new("a"), 0), (ClusterTarget::new("b"), 0)];
    assert_eq!(
        WeightedClusters::new(zero).unwrap_err(),
        WeightError::ZeroTotal
    );
}

// ---- request view ----

#[test]
fn request_view_from_uri_or_host() {
    let headers = {
        let mut h = HeaderMap::new();
        h.insert(http::header::HOST, HeaderValue::from_static("reviews:9080"));
        h
    };
    let origin_form: http::Uri = "/a?b=1".parse().expect("uri");
    let v = RequestView::new(&Method::GET, &origin_form, &headers);
    assert_eq!(v.authority, "reviews:9080");
    assert_eq!(v.path_and_query, "/a?b=1");

    let absolute: http::Uri = "http://ratings:9080/x".parse().expect("uri");
    let v = RequestView::new(&Method::GET, &absolute, &headers);
    assert_eq!(v.authority, "ratings:9080");
    assert_eq!(v.path_and_query, "/x");
}

#[test]
fn describe_lists_what_is_matched() {
    let mut m = RouteMatcher::new(PathMatcher::regex("/a/[0-9]+").expect("regex"));
    m.headers = vec![header(":method", value(StringMatcher::exact("GET", false)))];
    let t = table(vec![route("r", m)]);
    let d = t.describe();
    let r = &d["virtual_hosts"][0]["routes"][0];
    assert_eq!(r["match"]["safe_regex"], "/a/[0-9]+");
    assert_eq!(r["match"]["headers"][0]["name"], ":method");
    assert_eq!(r["action"]["cluster"], "r");
}

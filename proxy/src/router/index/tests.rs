//! The index must choose exactly the route the in-order scan chooses. Besides targeted cases,
//! a seeded property test builds random tables of every matcher kind over a small alphabet (so
//! that patterns overlap, nest and differ only in case) and compares both on random requests.

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::super::header::{HeaderMatch, HeaderMatcher, HeaderSource};
use super::super::query::{QueryMatch, QueryMatcher};
use super::super::string_match::StringMatcher;
use super::super::{
    first_match, ClusterTarget, RouteAction, RouteMatcher, RoutePolicy, RouteTable, VirtualHost,
};
use super::*;

fn route(name: String, matcher: RouteMatcher) -> Route {
    Route {
        action: RouteAction::Cluster(ClusterTarget::new(&name)),
        name: name.into(),
        matcher,
        policy: RoutePolicy::default(),
    }
}

fn routes(paths: Vec<PathMatcher>) -> Vec<Route> {
    paths
        .into_iter()
        .enumerate()
        .map(|(i, p)| route(format!("r{i}"), RouteMatcher::new(p)))
        .collect()
}

fn view<'a>(path: &'a str, method: &'a Method, headers: &'a HeaderMap) -> RequestView<'a> {
    RequestView {
        authority: "host",
        path_and_query: path,
        method,
        headers,
    }
}

/// Both answers for `path` (no headers), as route names.
fn both(routes: &[Route], index: &RouteIndex, path: &str) -> (Option<String>, Option<String>) {
    let headers = HeaderMap::new();
    let req = view(path, &Method::GET, &headers);
    let target = PathTarget::new(path);
    let indexed = index
        .find(routes, &req, &target)
        .map(|r| r.name.to_string());
    let linear = first_match(routes, &req, &target).map(|r| r.name.to_string());
    (indexed, linear)
}

fn indexed(routes: &[Route], path: &str) -> Option<String> {
    let index = RouteIndex::build_any_size(routes).expect("index");
    let (indexed, linear) = both(routes, &index, path);
    assert_eq!(indexed, linear, "path {path:?}");
    indexed
}

fn regex(pattern: &str) -> PathMatcher {
    PathMatcher::regex(pattern).expect("valid regex")
}

#[test]
fn literal_prefix_is_a_necessary_start() {
    assert_eq!(literal_prefix("/api/v[0-9]+/x"), Some("/api/v"));
    assert_eq!(literal_prefix("/api/users"), Some("/api/users"));
    // A repetition makes the last literal optional (or repeatable).
    assert_eq!(literal_prefix("/ab?"), Some("/a"));
    assert_eq!(literal_prefix("/ab*c"), Some("/a"));
    assert_eq!(literal_prefix("/ab{0,2}"), Some("/a"));
    assert_eq!(literal_prefix("/ab+"), Some("/a"));
    assert_eq!(literal_prefix("/a?"), Some("/"));
    assert_eq!(literal_prefix("a?"), None);
    // Alternation anywhere, classes, groups, flags and escapes at the start: no literal.
    assert_eq!(literal_prefix("/a|/b"), None);
    assert_eq!(literal_prefix("/a(/b|/c)"), None);
    assert_eq!(literal_prefix("(?i)/a"), None);
    assert_eq!(literal_prefix("[/]a"), None);
    assert_eq!(literal_prefix(".*"), None);
    assert_eq!(literal_prefix("\\/a"), None);
    assert_eq!(literal_prefix(""), None);
    // A flag group later only ends the literal.
    assert_eq!(literal_prefix("/abc(?i)def"), Some("/abc"));
    assert_eq!(literal_prefix("/a.b"), Some("/a"));
}

#[test]
fn regex_with_literal_prefix_is_found_through_the_trie() {
    let r = routes(vec![
        PathMatcher::prefix("/other", true),
        regex("/api/v[0-9]+/items"),
        regex("(?i)/API/.*"),
        PathMatcher::prefix("/", true),
    ]);
    assert_eq!(indexed(&r, "/api/v2/items").as_deref(), Some("r1"));
    assert_eq!(indexed(&r, "/api/v2/items?x=1").as_deref(), Some("r1"));
    assert_eq!(indexed(&r, "/Api/v2/items").as_deref(), Some("r2"));
    assert_eq!(indexed(&r, "/api/vx/items").as_deref(), Some("r2"));
    assert_eq!(indexed(&r, "/ap").as_deref(), Some("r3"));
}

#[test]
fn prefix_sees_the_query_exact_and_separated_do_not() {
    let r = routes(vec![
        PathMatcher::prefix("/a?x=1", true),
        PathMatcher::exact("/a", true),
        PathMatcher::separated_prefix("/b", true),
        PathMatcher::prefix("/b?", true),
    ]);
    assert_eq!(indexed(&r, "/a?x=1&y").as_deref(), Some("r0"));
    assert_eq!(indexed(&r, "/a?x=2").as_deref(), Some("r1"));
    assert_eq!(indexed(&r, "/a#x").as_deref(), Some("r1"));
    assert_eq!(indexed(&r, "/ab"), None);
    assert_eq!(indexed(&r, "/b").as_deref(), Some("r2"));
    assert_eq!(indexed(&r, "/b/c").as_deref(), Some("r2"));
    assert_eq!(indexed(&r, "/b?q").as_deref(), Some("r2"));
    assert_eq!(indexed(&r, "/bc"), None);
    assert_eq!(indexed(&r, "/bc?q"), None);
}

#[test]
fn case_insensitive_rules_fold_the_request() {
    let r = routes(vec![
        PathMatcher::exact("/Login", false),
        PathMatcher::prefix("/API/", false),
        PathMatcher::separated_prefix("/Docs", false),
        // Built by hand with capitals: the matcher folds only the request, so it still
        // matches any case; the index must agree.
        PathMatcher::Prefix {
            prefix: "/Raw".into(),
            ignore_case: true,
        },
        PathMatcher::prefix("/Case", true),
    ]);
    assert_eq!(indexed(&r, "/LOGIN").as_deref(), Some("r0"));
    assert_eq!(indexed(&r, "/login?next=/").as_deref(), Some("r0"));
    assert_eq!(indexed(&r, "/api/x").as_deref(), Some("r1"));
    assert_eq!(indexed(&r, "/dOcS/x").as_deref(), Some("r2"));
    assert_eq!(indexed(&r, "/DOCSX"), None);
    assert_eq!(indexed(&r, "/raw").as_deref(), Some("r3"));
    assert_eq!(indexed(&r, "/RAW").as_deref(), Some("r3"));
    assert_eq!(indexed(&r, "/case"), None);
    assert_eq!(indexed(&r, "/Case").as_deref(), Some("r4"));
}

#[test]
fn first_passing_route_wins_across_lists() {
    // The path rules of r0..r2 all pass; r0 and r1 fail on a header, so r2 wins, even though
    // it sits in another list (exact) than the earlier ones (prefix, regex).
    let header = |value: &str| HeaderMatcher {
        source: HeaderSource::from_name("x-v").expect("name"),
        rule: HeaderMatch::Value(StringMatcher::exact(value, false)),
        invert: false,
        treat_missing_as_empty: false,
    };
    let mut r = routes(vec![
        PathMatcher::prefix("/a", true),
        regex("/a.*"),
        PathMatcher::exact("/a/b", true),
        PathMatcher::prefix("/", true),
    ]);
    r[0].matcher.headers.push(header("1"));
    r[1].matcher.headers.push(header("2"));
    assert_eq!(indexed(&r, "/a/b").as_deref(), Some("r2"));
    assert_eq!(indexed(&r, "/a/c").as_deref(), Some("r3"));
}

#[test]
fn many_nested_prefixes_spill_to_the_heap() {
    // Every prefix of a 60-segment path applies at once: more lists than fit on the stack.
    let path = "/a".repeat(60);
    let mut paths: Vec<PathMatcher> = (1..=60)
        .rev()
        .map(|n| PathMatcher::prefix(&"/a".repeat(n), true))
        .collect();
    paths.push(PathMatcher::prefix("/", true));
    let mut r = routes(paths);
    // Only the shortest prefixes may pass: the others need a header the request lacks.
    for route in &mut r[..50] {
        route.matcher.headers.push(HeaderMatcher {
            source: HeaderSource::from_name("x-none").expect("name"),
            rule: HeaderMatch::Present(true),
            invert: false,
            treat_missing_as_empty: false,
        });
    }
    assert_eq!(indexed(&r, &path).as_deref(), Some("r50"));
    assert_eq!(indexed(&r, "/b").as_deref(), Some("r60"));
}

#[test]
fn deep_patterns_build_without_recursion() {
    // One long chain of nested patterns: the builder is iterative, so depth is no concern.
    let paths = (1..=5_000)
        .map(|n| PathMatcher::prefix(&"/x".repeat(n), true))
        .collect();
    let r = routes(paths);
    assert_eq!(indexed(&r, &"/x".repeat(5_000)).as_deref(), Some("r0"));
    assert_eq!(indexed(&r, "/x/y").as_deref(), Some("r0"));
    assert_eq!(indexed(&r, "/y"), None);
}

#[test]
fn small_hosts_are_not_indexed_and_edited_hosts_fall_back() {
    let r = routes(vec![PathMatcher::prefix("/", true); MIN_INDEXED_ROUTES - 1]);
    assert!(RouteIndex::build(&r).is_none());
    let mut r = routes(vec![PathMatcher::exact("/a", true); MIN_INDEXED_ROUTES]);
    let index = RouteIndex::build(&r).expect("large enough");
    assert!(index.covers(&r));
    r.push(route(
        "late".into(),
        RouteMatcher::new(PathMatcher::prefix("/", true)),
    ));
    assert!(!index.covers(&r));

    // A table whose routes were edited after it was built still answers like the scan.
    let mut table = RouteTable::new(
        "t".into(),
        vec![VirtualHost {
            name: "vh".into(),
            domains: vec!["*".into()],
            routes: routes(vec![PathMatcher::exact("/a", true); MIN_INDEXED_ROUTES]),
        }],
        false,
    )
    .expect("table");
    table.virtual_hosts[0].routes.push(route(
        "late".into(),
        RouteMatcher::new(PathMatcher::prefix("/", true)),
    ));
    let headers = HeaderMap::new();
    let req = view("/b", &Method::GET, &headers);
    assert_eq!(table.find(&req).map(|r| &*r.name), Some("late"));
}

// ---- property test ----

const SEGMENTS: &[&str] = &["a", "A", "ab", "aB", "api", "v1", "V1", "x", ""];

/// Between `min` and 3 segments; patterns take at least one most of the time, or almost every
/// table would end up with a catch-all.
fn random_path(rng: &mut StdRng, min: usize) -> String {
    let mut path = String::new();
    for _ in 0..rng.random_range(min..4) {
        path.push('/');
        path.push_str(SEGMENTS[rng.random_range(0..SEGMENTS.len())]);
    }
    if path.is_empty() || rng.random_bool(0.2) {
        path.push('/');
    }
    path
}

fn random_path_matcher(rng: &mut StdRng) -> PathMatcher {
    let min = usize::from(rng.random_bool(0.97));
    let p = random_path(rng, min);
    let sensitive = rng.random_bool(0.6);
    match rng.random_range(0..11) {
        0..=2 => PathMatcher::prefix(&p, sensitive),
        // A prefix that reaches into the query, or that is cut mid-segment.
        3 => PathMatcher::prefix(&format!("{p}?x"), sensitive),
        4 => PathMatcher::prefix(&p[..rng.random_range(0..=p.len())], sensitive),
        5..=6 => PathMatcher::exact(&p, sensitive),
        7..=8 => PathMatcher::separated_prefix(p.trim_end_matches('/'), sensitive),
        _ => {
            let templates = [
                "{p}",
                "{p}.*",
                "{p}[0-9]*",
                "{p}b?",
                "{p}|/a",
                "(?i){p}",
                "{p}(/.*)?",
                ".*{p}",
                "{p}x*",
                "{p}(?i)b",
            ];
            let t = templates[rng.random_range(0..templates.len())];
            regex(&t.replace("{p}", &p))
        }
    }
}

fn random_route(rng: &mut StdRng, i: usize) -> Route {
    let mut matcher = RouteMatcher::new(random_path_matcher(rng));
    if rng.random_bool(0.3) {
        let rule = if rng.random_bool(0.5) {
            HeaderMatch::Value(StringMatcher::exact(
                ["1", "2"][rng.random_range(0..2)],
                false,
            ))
        } else {
            HeaderMatch::Present(rng.random_bool(0.5))
        };
        matcher.headers.push(HeaderMatcher {
            source: HeaderSource::from_name("x-h").expect("name"),
            rule,
            invert: rng.random_bool(0.2),
            treat_missing_as_empty: rng.random_bool(0.2),
        });
    }
    if rng.random_bool(0.2) {
        let rule = if rng.random_bool(0.5) {
            QueryMatch::Value(StringMatcher::exact("1", false))
        } else {
            QueryMatch::Present(rng.random_bool(0.5))
        };
        matcher.query_parameters.push(QueryMatcher {
            name: "x".into(),
            rule,
        });
    }
    matcher.grpc = rng.random_bool(0.1);
    route(format!("r{i}"), matcher)
}

struct RandomRequest {
    path: String,
    headers: HeaderMap,
}

fn random_request(rng: &mut StdRng) -> RandomRequest {
    let mut path = random_path(rng, 0);
    if rng.random_bool(0.2) {
        path.push_str(["0", "12", "b", "B", "x"][rng.random_range(0..5)]);
    }
    if rng.random_bool(0.3) {
        path.push('?');
        path.push_str(["x=1", "x", "y=2&x=3", "a/b", ""][rng.random_range(0..5)]);
    }
    if rng.random_bool(0.1) {
        path.push_str(["#f", "#?x=1", "#/a"][rng.random_range(0..3)]);
    }
    let mut headers = HeaderMap::new();
    if rng.random_bool(0.5) {
        let value = ["1", "2", ""][rng.random_range(0..3)];
        headers.insert(
            HeaderName::from_static("x-h"),
            HeaderValue::from_static(value),
        );
    }
    if rng.random_bool(0.1) {
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
    }
    RandomRequest { path, headers }
}

#[test]
fn index_chooses_what_the_linear_scan_chooses() {
    let mut rng = StdRng::seed_from_u64(0x5eed_1dd3);
    let mut compared = 0;
    let mut found = 0;
    // Wins by a route past the first few: the scan had to pass over routes to get there.
    let mut late = 0;
    for _ in 0..400 {
        let size = rng.random_range(0..100);
        let routes: Vec<Route> = (0..size).map(|i| random_route(&mut rng, i)).collect();
        let index = RouteIndex::build_any_size(&routes).expect("index");
        let table = RouteTable::new(
            "t".into(),
            vec![VirtualHost {
                name: "vh".into(),
                domains: vec!["*".into()],
                routes: routes.clone(),
            }],
            false,
        )
        .expect("table");
        for _ in 0..150 {
            let r = random_request(&mut rng);
            let req = view(&r.path, &Method::GET, &r.headers);
            let target = PathTarget::new(&r.path);
            let linear = first_match(&routes, &req, &target).map(|r| &*r.name);
            let via_index = index.find(&routes, &req, &target).map(|r| &*r.name);
            assert_eq!(
                via_index, linear,
                "path {:?} headers {:?} routes {:#?}",
                r.path, r.headers, routes
            );
            assert_eq!(table.find(&req).map(|r| &*r.name), linear);
            assert_eq!(table.find_linear(&req).map(|r| &*r.name), linear);
            compared += 1;
            found += usize::from(linear.is_some());
            late += usize::from(
                linear.is_some_and(|name| name[1..].parse().is_ok_and(|i: usize| i >= 8)),
            );
        }
    }
    // The generator must exercise no match, early and late matches, or the comparison proves
    // little.
    assert!(
        found > compared / 10 && found < compared * 19 / 20,
        "{found}/{compared}"
    );
    assert!(late > found / 10, "{late} late of {found}");
}

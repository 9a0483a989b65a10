//! Route matching cost per request, by virtual host size: the indexed `RouteTable::find`
//! against `RouteTable::find_linear`, the in-order scan it replaces.
//!
//! `cargo bench -p weft-proxy --bench route_match`; `ROUTE_MATCH_SIZES=10,100` picks the sizes
//! (default 10, 100, 1000 and 10000 routes in one virtual host).
//!
//! The routes imitate what Istio generates for a gateway host with path-based routing: blocks
//! of ten routes per service (exact and prefix URIs, a header-matched canary and user route, a
//! query-matched search, a case-insensitive prefix, a literal-led regex in every fifth block, and
//! a service catch-all), plus a regex the index cannot narrow every hundred blocks. Requests
//! carry a realistic set of headers and hit a route in the first block (early), in the last
//! block (late), or no route at all (none).
//!
//! Before timing, each case also counts heap allocations made by `find` (through a counting
//! global allocator) and fails if there are any: matching is meant to allocate nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use weft_proxy::router::{
    ClusterTarget, HeaderMatch, HeaderMatcher, HeaderSource, PathMatcher, QueryMatch, QueryMatcher,
    RequestView, Route, RouteAction, RouteMatcher, RoutePolicy, RouteTable, StringMatcher,
    VirtualHost,
};

/// The system allocator, counting allocations so the bench can check `find` makes none.
struct CountingAlloc;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations_in(f: impl Fn()) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    f();
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

const DEFAULT_SIZES: &[usize] = &[10, 100, 1_000, 10_000];
const BLOCK: usize = 10;

fn header(name: &str, value: &str) -> HeaderMatcher {
    HeaderMatcher {
        source: HeaderSource::from_name(name).expect("static header name"),
        rule: HeaderMatch::Value(StringMatcher::exact(value, false)),
        invert: false,
        treat_missing_as_empty: false,
    }
}

fn regex(pattern: &str) -> PathMatcher {
    PathMatcher::regex(pattern).expect("static regex")
}

/// Route `slot` of service block `k`.
fn route(k: usize, slot: usize) -> RouteMatcher {
    let svc = format!("/svc{k}");
    match slot {
        0 => RouteMatcher::new(PathMatcher::exact(&format!("{svc}/healthz"), true)),
        1 => {
            let mut m = RouteMatcher::new(PathMatcher::prefix(&format!("{svc}/api/"), true));
            m.headers.push(header("x-canary", "true"));
            m
        }
        2 => RouteMatcher::new(PathMatcher::prefix(&format!("{svc}/api/v2/"), true)),
        3 => RouteMatcher::new(PathMatcher::prefix(&format!("{svc}/api/"), true)),
        4 => RouteMatcher::new(PathMatcher::exact(&format!("{svc}/login"), true)),
        5 => RouteMatcher::new(PathMatcher::prefix(&format!("{svc}/static/"), false)),
        6 if k % 100 == 99 => {
            RouteMatcher::new(regex(&format!("/(svc{k}|legacy{k})/items/[0-9]+")))
        }
        6 if k.is_multiple_of(5) => RouteMatcher::new(regex(&format!("{svc}/items/[0-9]+"))),
        6 => RouteMatcher::new(PathMatcher::prefix(&format!("{svc}/items/"), true)),
        7 => {
            let mut m = RouteMatcher::new(PathMatcher::prefix(&format!("{svc}/reviews"), true));
            m.headers.push(header("end-user", "jason"));
            m
        }
        8 => {
            let mut m = RouteMatcher::new(PathMatcher::exact(&format!("{svc}/search"), true));
            m.query_parameters.push(QueryMatcher {
                name: "q".into(),
                rule: QueryMatch::Present(true),
            });
            m
        }
        _ => RouteMatcher::new(PathMatcher::prefix(&format!("{svc}/"), true)),
    }
}

fn table(size: usize) -> RouteTable {
    let routes = (0..size)
        .map(|i| {
            let name = format!("r{i}");
            Route {
                action: RouteAction::Cluster(ClusterTarget::new(&name)),
                name: name.into(),
                matcher: route(i / BLOCK, i % BLOCK),
                policy: RoutePolicy::default(),
            }
        })
        .collect();
    let vh = VirtualHost {
        name: "shop".into(),
        domains: vec!["shop.example.com".into()],
        routes,
    };
    RouteTable::new("gateway".into(), vec![vh], false).expect("no duplicate domains")
}

fn headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in [
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) bench"),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, deflate, br"),
        ("x-request-id", "4f1c6e0a-8a3b-4d7e-9f2a-1b2c3d4e5f60"),
        ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("x-forwarded-proto", "https"),
        ("cookie", "session=abc123; theme=dark"),
    ] {
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    h
}

/// `(scenario, path)`: early hits block 0's `/api/v2/` route (the third route); late hits the
/// last block's `/api/` route; none matches nothing.
fn requests(size: usize) -> [(&'static str, String); 3] {
    let last = (size - 1) / BLOCK;
    [
        ("early", "/svc0/api/v2/users?id=7".to_string()),
        ("late", format!("/svc{last}/api/v1/users?id=7")),
        ("none", "/unknown/path?x=1".to_string()),
    ]
}

fn sizes() -> Vec<usize> {
    std::env::var("ROUTE_MATCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_SIZES.to_vec())
}

fn route_match(c: &mut Criterion) {
    // The counter must see allocations, or the zero checks below would prove nothing.
    assert_eq!(allocations_in(|| drop(black_box(vec![0u8; 16]))), 1);
    let headers = headers();
    let method = Method::GET;
    for size in sizes() {
        let table = table(size);
        for (scenario, path) in requests(size) {
            let req = RequestView {
                authority: "shop.example.com",
                path_and_query: &path,
                method: &method,
                headers: &headers,
            };
            let linear = table.find_linear(&req).map(|r| r.name.clone());
            let indexed = table.find(&req).map(|r| r.name.clone());
            assert_eq!(indexed, linear, "{scenario} at {size} routes");
            assert_eq!(linear.is_none(), scenario == "none", "{scenario} at {size}");
            let allocations = allocations_in(|| {
                for _ in 0..100 {
                    black_box(table.find(black_box(&req)));
                }
            });
            assert_eq!(allocations, 0, "find allocated: {scenario} at {size}");
            let mut group = c.benchmark_group(format!("route_match/{scenario}"));
            group.bench_with_input(BenchmarkId::new("linear", size), &req, |b, req| {
                b.iter(|| black_box(table.find_linear(black_box(req))).is_some())
            });
            group.bench_with_input(BenchmarkId::new("indexed", size), &req, |b, req| {
                b.iter(|| black_box(table.find(black_box(req))).is_some())
            });
            group.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(40)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = route_match
}
criterion_main!(benches);

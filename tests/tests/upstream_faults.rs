//! Faults of upstreams under load, through weft-proxy configured by weftd: an upstream killed
//! with requests in flight, one that accepts and never answers, one that closes after the
//! response headers, and an endpoint removed from EDS while requests run. Each test counts
//! the outcomes the client saw and reads the proxy's stats for the same events.

use std::time::Duration;
use weft_e2e::client::{ProxyConn, Reply};
use weft_e2e::config::{service_entry, Mesh, Proxy};
use weft_e2e::eventually;
use weft_e2e::faulty::{Fault, Faulty};
use weft_e2e::load::Load;
use weft_e2e::upstream::Echo;

const URL: &str = "http://svc:8000/";
const CLUSTER: &str = "outbound|8000||svc.default.svc.cluster.local";

async fn start(files: &[(&str, String)]) -> (Mesh, Proxy) {
    let mut mesh = Mesh::new();
    for (name, yaml) in files {
        mesh.write(name, yaml);
    }
    mesh.start_weftd().await;
    let proxy = mesh.start_proxy("sleep-v1", "default").await;
    (mesh, proxy)
}

/// One request on its own connection, bounded so a proxy that never answers fails the test.
async fn get(proxy: &Proxy, url: &str) -> anyhow::Result<Reply> {
    tokio::time::timeout(
        Duration::from_secs(30),
        ProxyConn::new(proxy.outbound).get(url, &[]),
    )
    .await
    .unwrap_or_else(|_| panic!("no answer to {url} within 30 s"))
}

/// The sum of every `name` sample whose labels include all of `labels`.
async fn stat(proxy: &Proxy, name: &str, labels: &[(&str, &str)]) -> u64 {
    let page = proxy.admin_get("/stats/prometheus").await.body;
    let prefix = format!("{name}{{");
    page.lines()
        .filter(|l| l.starts_with(&prefix))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn virtual_service_with_timeout(timeout: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: svc\n  namespace: default\nspec:\n  hosts:\n  - svc\n  http:\n  - timeout: {timeout}\n    route:\n    - destination:\n        host: svc\n"
    )
}

/// Waits until both endpoints have answered, so the balancer is known to use both.
async fn warm(proxy: &Proxy, a: &str, b: &str) {
    eventually("both endpoints answer", Duration::from_secs(15), || async {
        let mut seen = (false, false);
        for _ in 0..10 {
            let r = get(proxy, URL).await.ok()?;
            seen.0 |= r.served_by() == a;
            seen.1 |= r.served_by() == b;
        }
        (seen.0 && seen.1).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_killed_mid_request_fails_only_its_requests_in_flight() {
    let healthy = Echo::start("healthy").await;
    let doomed = Faulty::start("doomed").await;
    let se = service_entry(
        "svc",
        8000,
        "HTTP",
        &[(healthy.port(), "v1"), (doomed.port(), "v1")],
    );
    let (_mesh, proxy) = start(&[("svc.yaml", se)]).await;
    warm(&proxy, "healthy", "doomed").await;

    // 20 slow requests at once, each on its own connection: round robin puts about half on
    // each endpoint. Once all are in the upstreams, `doomed` dies.
    const N: u64 = 20;
    let (h0, d0) = (
        healthy.requests.load(std::sync::atomic::Ordering::SeqCst),
        doomed.received(),
    );
    let slow = format!("{URL}?delay_ms=3000");
    let calls: Vec<_> = (0..N)
        .map(|_| {
            let (outbound, slow) = (proxy.outbound, slow.clone());
            tokio::spawn(async move { ProxyConn::new(outbound).get(&slow, &[]).await })
        })
        .collect();
    let in_doomed = eventually(
        "all requests in the upstreams",
        Duration::from_secs(15),
        || {
            let (healthy, doomed) = (&healthy, &doomed);
            async move {
                let h = healthy.requests.load(std::sync::atomic::Ordering::SeqCst) - h0;
                let d = doomed.received() - d0;
                (h + d == N).then_some(d)
            }
        },
    )
    .await;
    assert!(
        in_doomed > 0 && in_doomed < N,
        "{in_doomed} of {N} on doomed"
    );
    doomed.kill();
    let mut ok = 0;
    let mut terminated = 0;
    for call in calls {
        let reply = call.await.expect("task").expect("a reply");
        match reply.status.as_u16() {
            200 => {
                assert_eq!(reply.served_by(), "healthy");
                ok += 1;
            }
            503 => {
                assert!(
                    reply.body.contains("connection termination"),
                    "{}",
                    reply.body
                );
                terminated += 1;
            }
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    // Exactly the requests the dead upstream had accepted fail (503 UC: Istio's default
    // retry policy does not retry a reset, which may have been processed); none other.
    assert_eq!((ok, terminated), (N - in_doomed, in_doomed));

    // Later requests reach the healthy endpoint: a connect failure to the dead one is
    // retried on the other host (Istio's default retry: connect-failure, previous hosts).
    for _ in 0..20 {
        let reply = get(&proxy, URL).await.expect("a reply");
        assert_eq!((reply.status.as_u16(), reply.served_by()), (200, "healthy"));
    }
    let uc = stat(
        &proxy,
        "istio_requests_total",
        &[("response_code", "503"), ("response_flags", "UC")],
    )
    .await;
    assert_eq!(uc, in_doomed);
    assert!(
        stat(
            &proxy,
            "envoy_cluster_upstream_cx_connect_fail",
            &[("cluster_name", CLUSTER)]
        )
        .await
            > 0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_never_answers_is_cut_off_by_the_route_timeout() {
    let silent = Faulty::start("silent").await;
    let se = service_entry("svc", 8000, "HTTP", &[(silent.port(), "v1")]);
    let (_mesh, proxy) = start(&[
        ("svc.yaml", se),
        ("svc-vs.yaml", virtual_service_with_timeout("1s")),
    ])
    .await;
    eventually(
        "the route timeout applies",
        Duration::from_secs(15),
        || async { (get(&proxy, URL).await.ok()?.status == 200).then_some(()) },
    )
    .await;
    silent.set(Fault::Hang);
    const N: u64 = 10;
    let calls: Vec<_> = (0..N)
        .map(|_| {
            let outbound = proxy.outbound;
            tokio::spawn(async move { ProxyConn::new(outbound).get(URL, &[]).await })
        })
        .collect();
    for call in calls {
        let reply = call.await.expect("task").expect("a reply");
        assert_eq!(reply.status.as_u16(), 504, "{}", reply.body);
        assert_eq!(reply.body, "upstream request timeout");
    }
    let ut = stat(
        &proxy,
        "istio_requests_total",
        &[("response_code", "504"), ("response_flags", "UT")],
    )
    .await;
    assert_eq!(ut, N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_closes_after_the_headers_resets_the_client_stream() {
    let faulty = Faulty::start("truncating").await;
    let se = service_entry("svc", 8000, "HTTP", &[(faulty.port(), "v1")]);
    let (_mesh, proxy) = start(&[("svc.yaml", se)]).await;
    faulty.set(Fault::HeadersThenClose);
    const N: u64 = 10;
    for _ in 0..N {
        // The headers (200) were already forwarded; the body cannot be completed, so the
        // client must see its response cut short, never a complete (short) body.
        let result = get(&proxy, URL).await;
        assert!(
            result.is_err(),
            "a truncated body was delivered as complete"
        );
    }
    assert_eq!(faulty.received(), N);
    // Recovered: the next answers are whole.
    faulty.set(Fault::Answer);
    let reply = get(&proxy, URL).await.expect("a reply");
    assert_eq!(
        (reply.status.as_u16(), reply.served_by()),
        (200, "truncating")
    );
    // Counted as the 200s they started as (with the one whole answer). Envoy also flags
    // them UC; weft-proxy's flags for a body cut short are set by the stream layer, which
    // does not yet do so (see the report of issue #10).
    let answered = stat(&proxy, "istio_requests_total", &[("response_code", "200")]).await;
    assert_eq!(answered, N + 1);
    assert_eq!(
        stat(
            &proxy,
            "envoy_cluster_upstream_rq",
            &[("envoy_response_code", "200"), ("cluster_name", CLUSTER)]
        )
        .await,
        N + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_removed_from_eds_under_load_fails_no_request() {
    let a = Echo::start("a").await;
    let b = Echo::start("b").await;
    let both = service_entry("svc", 8000, "HTTP", &[(a.port(), "v1"), (b.port(), "v1")]);
    let (mesh, proxy) = start(&[("svc.yaml", both)]).await;
    warm(&proxy, "a", "b").await;
    let load = Load::start(proxy.outbound, URL, 4);
    eventually("load flowing", Duration::from_secs(10), || async {
        (load.stats.ok.load(std::sync::atomic::Ordering::Relaxed) > 50).then_some(())
    })
    .await;
    mesh.write(
        "svc.yaml",
        &service_entry("svc", 8000, "HTTP", &[(a.port(), "v1")]),
    );
    eventually("traffic leaves b", Duration::from_secs(15), || async {
        for _ in 0..10 {
            if get(&proxy, URL).await.ok()?.served_by() != "a" {
                return None;
            }
        }
        Some(())
    })
    .await;
    let b_after = b.requests.load(std::sync::atomic::Ordering::SeqCst);
    // Requests keep running after the removal, and none of them reaches b.
    let before = load.stats.ok.load(std::sync::atomic::Ordering::Relaxed);
    eventually("more load", Duration::from_secs(10), || async {
        (load.stats.ok.load(std::sync::atomic::Ordering::Relaxed) > before + 50).then_some(())
    })
    .await;
    let stats = load.stop().await;
    assert_eq!(
        stats.failed.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "{}",
        stats.summary()
    );
    assert_eq!(
        b.requests.load(std::sync::atomic::Ordering::SeqCst),
        b_after
    );
    assert_eq!(
        stat(
            &proxy,
            "envoy_cluster_membership_total",
            &[("cluster_name", CLUSTER)]
        )
        .await,
        1
    );
}

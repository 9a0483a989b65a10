//! A DNS endpoint that disappears: weft-proxy resolves a `resolution: DNS` ServiceEntry's
//! endpoint name through a DNS server the test controls (`--dns-resolver`). When the server
//! fails (SERVFAIL) or stops answering, the proxy keeps connecting to the address it resolved
//! last, as Envoy keeps a DNS cluster's hosts when a resolution fails; when the name resolves
//! to another address, new connections go there. Every request asks the upstream to close
//! its connection (`?close=1`), so each one needs a new upstream connection and so an address.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use weft_e2e::client::{ProxyConn, Reply};
use weft_e2e::config::{Mesh, Proxy, ProxyLaunch};
use weft_e2e::dns::{DnsAnswer, FakeDns};
use weft_e2e::eventually;
use weft_e2e::upstream::Echo;

const NAME: &str = "upstream.weft.test";
const URL: &str = "http://svc:8000/?close=1";
/// How long a phase may take to see the proxy's refreshes: Envoy's refresh interval is 5 s.
const PHASE_LIMIT: Duration = Duration::from_secs(40);

fn dns_service_entry(port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: svc\n  namespace: default\nspec:\n  hosts:\n  - svc.default.svc.cluster.local\n  ports:\n  - number: 8000\n    name: http\n    protocol: HTTP\n  resolution: DNS\n  endpoints:\n  - address: {NAME}\n    ports:\n      http: {port}\n"
    )
}

/// Two echo servers on one port, at 127.0.0.1 and 127.0.0.2: the two addresses the name will
/// have.
async fn two_servers_one_port() -> (Echo, Echo) {
    for _ in 0..10 {
        let first = Echo::start("first").await;
        let at = SocketAddr::from(([127, 0, 0, 2], first.port()));
        if let Ok(second) = Echo::start_at("second", at).await {
            return (first, second);
        }
    }
    panic!("no port free on both 127.0.0.1 and 127.0.0.2");
}

async fn get(proxy: &Proxy) -> Reply {
    tokio::time::timeout(
        Duration::from_secs(30),
        ProxyConn::new(proxy.outbound).get(URL, &[]),
    )
    .await
    .unwrap_or_else(|_| panic!("no answer to {URL} within 30 s"))
    .unwrap_or_else(|e| panic!("request to {URL} failed: {e}"))
}

/// Sends requests until the DNS server has had `more` questions since the phase began, and
/// checks every answer came from `server`; returns how many requests were sent.
async fn requests_while_dns_is_asked(proxy: &Proxy, dns: &FakeDns, more: u64, server: &str) -> u64 {
    let target = dns.questions() + more;
    let deadline = tokio::time::Instant::now() + PHASE_LIMIT;
    let mut sent = 0;
    while dns.questions() < target {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the proxy asked the DNS server {} times in {PHASE_LIMIT:?}, expected {target}",
            dns.questions()
        );
        let r = get(proxy).await;
        sent += 1;
        assert_eq!(r.status, 200, "request {sent}: {}", r.body);
        assert_eq!(r.served_by(), server, "request {sent}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_name_that_stops_resolving_keeps_its_last_address_and_moves_when_it_resolves_again() {
    let (first, second) = two_servers_one_port().await;
    let dns = FakeDns::start(NAME, DnsAnswer::Address(Ipv4Addr::new(127, 0, 0, 1))).await;
    let mut mesh = Mesh::new();
    mesh.write("svc.yaml", &dns_service_entry(first.port()));
    mesh.start_weftd().await;
    let resolver = dns.addr.to_string();
    let mut proxy = mesh
        .start_proxy_launched(
            "sleep-v1",
            "default",
            ProxyLaunch {
                args: &["--dns-resolver", &resolver],
                ..Default::default()
            },
        )
        .await;

    eventually(
        "the name resolves to the first server",
        Duration::from_secs(20),
        || async {
            let r = ProxyConn::new(proxy.outbound).get(URL, &[]).await.ok()?;
            (r.status == 200 && r.served_by() == "first").then_some(())
        },
    )
    .await;
    assert!(dns.questions() >= 1);

    // The server fails: two refreshes later, the first address still serves every request.
    dns.set(DnsAnswer::ServFail);
    let during_servfail = requests_while_dns_is_asked(&proxy, &dns, 2, "first").await;
    // The server is down: each refresh goes unanswered (twice, a second apart).
    dns.set(DnsAnswer::Silent);
    let during_silence = requests_while_dns_is_asked(&proxy, &dns, 4, "first").await;
    assert!(
        during_servfail + during_silence >= 20,
        "{during_servfail} + {during_silence} requests while the name did not resolve"
    );
    assert_eq!(
        second.requests.load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    // The name resolves again, to the second address: new connections go there.
    dns.set(DnsAnswer::Address(Ipv4Addr::new(127, 0, 0, 2)));
    eventually(
        "traffic moves to the second server",
        PHASE_LIMIT,
        || async { (get(&proxy).await.served_by() == "second").then_some(()) },
    )
    .await;
    for i in 0..10 {
        let r = get(&proxy).await;
        assert_eq!(
            (r.status.as_u16(), r.served_by()),
            (200, "second"),
            "request {i}"
        );
    }
    assert!(proxy.proc.is_running(), "{}", proxy.proc.log());
    let log = proxy.proc.log();
    assert!(
        log.contains("keeping the last addresses"),
        "the proxy says it kept the old address: {log}"
    );
}

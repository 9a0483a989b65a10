//! Sidecars in pods: network namespaces on one bridge, each running a BookInfo app and its
//! weft-proxy (`--mode sidecar`, uid 1337) behind the rules of `weftctl iptables`, configured
//! by weftd in the root namespace. The apps never name a proxy: productpage calls
//! `http://reviews:9080/` (its /etc/hosts maps the name to the service VIP) and the rules do
//! the rest, so these tests check what Istio's sidecars do in a cluster: interception both
//! ways, routing by VirtualService (weights, headers), both sidecars' metrics, traffic outside
//! the mesh passing through (HTTP and opaque TCP), a dead inbound port refused at once, and
//! `weftctl proxy-config` reading a sidecar's listeners.
//!
//! Each scenario also runs with a real Envoy as the sidecar (`…_on_envoy`, bootstrapped by
//! `weftctl bootstrap-envoy --mode sidecar`), as Istio runs it: the same config from weftd, so a
//! difference between the two is weft-proxy's. Istio's `istio_*` metrics are checked on
//! weft-proxy only (a stock Envoy has none).

use std::io::Write as _;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use weft_e2e::netns::{require_root, run_ok};
use weft_e2e::pods::{
    curl, prometheus_sum, AppPod, MeshSpec, PodMesh, Service, Sidecars, TcpEcho, Workload, ADMIN,
    APP_PORT,
};

/// For `require_root`'s message: "this test builds network namespaces and needs root".
const NEEDS: &str = "this test";
/// Second octet of the pods' subnets; iptables.rs uses 231 and 232.
const NET: u8 = 233;

const SERVICES: &[Service] = &[
    Service {
        name: "productpage",
        vip: "10.96.0.10",
    },
    Service {
        name: "reviews",
        vip: "10.96.0.20",
    },
];

const WORKLOADS: &[Workload] = &[
    Workload {
        pod: "productpage-v1",
        app: "productpage",
        version: "v1",
    },
    Workload {
        pod: "reviews-v1",
        app: "reviews",
        version: "v1",
    },
    Workload {
        pod: "reviews-v2",
        app: "reviews",
        version: "v2",
    },
];

const REVIEWS: &str = "reviews.default.svc.cluster.local";
const REVIEWS_URL: &str = "http://reviews:9080/health";

const REVIEWS_DR: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: default
spec:
  host: reviews
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
";

/// Istio's BookInfo routing in one VirtualService: user jason gets v2, everyone else 80/20.
const REVIEWS_VS: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
  - reviews
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination:
        host: reviews
        subset: v2
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 80
    - destination:
        host: reviews
        subset: v2
      weight: 20
";

fn start(sidecars: Sidecars, files: &[(&str, String)]) -> PodMesh {
    PodMesh::start(&MeshSpec {
        net: NET,
        services: SERVICES,
        workloads: WORKLOADS,
        files,
        sidecars,
    })
}

/// The status and `x-weft-demo` (which app version answered) of each of `n` GETs of `url`,
/// made by one curl inside `pod` as its application.
fn get_n(pod: &AppPod, url: &str, n: usize, headers: &[&str]) -> Vec<(String, String)> {
    let mut args = vec!["-w", "%{http_code} %header{x-weft-demo}\n"];
    for h in headers {
        args.extend(["-H", h]);
    }
    for _ in 0..n {
        args.extend([url, "-o", "/dev/null"]);
    }
    let out = pod.curl(&args);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (code, by) = l.split_once(' ').unwrap_or((l, ""));
            (code.to_string(), by.to_string())
        })
        .collect()
}

/// The first GET of `url` from `pod` that gets a 200, waiting for the config to arrive.
fn first_ok(pod: &AppPod, url: &str) -> String {
    let limit = Duration::from_secs(30);
    let deadline = Instant::now() + limit;
    loop {
        if let Some((code, by)) = get_n(pod, url, 1, &[]).first() {
            if code == "200" {
                return by.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{url} never answered 200 in {} within {limit:?}; what the pod sees:\n{}",
            pod.workload.pod,
            pod.diagnose(url)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn exists(path: &str) -> bool {
    std::path::Path::new(path).exists()
}

#[test]
#[ignore = "needs root: network namespaces"]
fn pods_on_one_bridge_reach_each_other_and_the_root_namespace_resolve_service_names_and_leave_nothing_behind(
) {
    require_root(NEEDS);
    let mesh = start(Sidecars::None, &[]);
    let pp = mesh.pod("productpage-v1");

    // Service names resolve to VIPs from the pod's own /etc/hosts; the search path is
    // Kubernetes'.
    for name in ["reviews", "reviews.default", REVIEWS] {
        let out = run_ok(pp.pod.command("getent").args(["hosts", name]));
        assert!(stdout(&out).starts_with("10.96.0.20 "), "{name}: {out:?}");
    }
    let resolv = stdout(&run_ok(pp.pod.command("cat").arg("/etc/resolv.conf")));
    assert!(
        resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{resolv}"
    );
    // The root namespace keeps its own.
    let root_hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    assert!(!root_hosts.contains("10.96.0.20"), "{root_hosts}");

    // Pods reach each other directly over the bridge, and the root namespace reaches them.
    for w in &WORKLOADS[1..] {
        let url = format!("http://{}:{APP_PORT}/health", mesh.pod(w.pod).pod.ip);
        let got = get_n(pp, &url, 1, &[]);
        assert_eq!(got, [("200".to_string(), w.pod.to_string())], "{url}");
        let out = curl(
            &mut Command::new("curl"),
            &["-o", "/dev/null", "-w", "%{http_code}", &url],
        );
        assert_eq!(
            stdout(&out),
            "200",
            "{url} from the root namespace: {out:?}"
        );
    }
    // The tools the sidecar tests use, without sidecars: opaque TCP to the root namespace
    // comes back intact, a dead port is refused.
    let echo = TcpEcho::start(&format!("{}:18081", mesh.network.gateway));
    let payload = opaque_payload();
    let back = tcp_round_trip(pp, &mesh.network.gateway, echo.addr.port(), &payload);
    assert!(back == payload, "the echo came back changed");
    let reviews_ip = &mesh.pod("reviews-v1").pod.ip;
    assert_dead_port_fails_fast(
        "the root namespace",
        Command::new("python3"),
        Command::new("curl"),
        reviews_ip,
    );
    assert_dead_port_fails_fast(
        "productpage's pod",
        pp.pod.command("python3"),
        pp.pod.command("curl"),
        reviews_ip,
    );
    // Without sidecars, nothing serves the VIP.
    let out = pp.curl(&["--connect-timeout", "2", REVIEWS_URL]);
    assert!(!out.status.success(), "{out:?}");

    let namespaces: Vec<String> = mesh.pods.iter().map(|p| p.pod.name.clone()).collect();
    let bridge = mesh.network.bridge.clone();
    drop(mesh);
    let listed = stdout(&run_ok(Command::new("ip").args(["netns", "list"])));
    for ns in &namespaces {
        assert!(!listed.contains(ns.as_str()), "{ns} left in {listed}");
        assert!(!exists(&format!("/etc/netns/{ns}")), "/etc/netns/{ns} left");
    }
    let out = Command::new("ip")
        .args(["link", "show", &bridge])
        .output()
        .expect("ip link");
    assert!(!out.status.success(), "bridge {bridge} left: {out:?}");
}

fn scrape(pod: &AppPod, metric: &str, labels: &[(&str, &str)]) -> u64 {
    prometheus_sum(&pod.admin("/stats/prometheus"), metric, labels)
}

/// The requests a sidecar sent to `cluster` (Envoy's stat, on both proxies).
fn cluster_requests(pod: &AppPod, cluster: &str) -> u64 {
    scrape(
        pod,
        "envoy_cluster_upstream_rq_total",
        &[("cluster_name", cluster)],
    )
}

/// The client sidecar's Istio metric for the calls to reviews (weft-proxy's own; a stock
/// Envoy has no `istio_*` metrics).
fn source_reported(pod: &AppPod) -> u64 {
    let source = [
        ("reporter", "source"),
        ("source_workload", "productpage-v1"),
        ("destination_service", REVIEWS),
        ("response_code", "200"),
    ];
    scrape(pod, "istio_requests_total", &source)
}

/// The serving sidecar's Istio metric for the calls it passed to its app: reported from the
/// destination, which is its own workload. The service is named as Istio's inbound stats name
/// it when the inbound cluster carries no service metadata (weftd's `inbound|9080||` carries
/// none): the workload's canonical service (its `app` label), in its own namespace.
fn destination_reported(pod: &AppPod) -> u64 {
    let destination = [
        ("reporter", "destination"),
        ("destination_workload", pod.workload.pod),
        ("destination_service", pod.workload.app),
        ("destination_service_name", pod.workload.app),
        ("destination_service_namespace", "default"),
        ("response_code", "200"),
    ];
    scrape(pod, "istio_requests_total", &destination)
}

/// The client's outbound cluster and the serving sidecars' inbound clusters carry each call
/// (on both proxies); with weft-proxy, Istio's metrics count them on both sides too.
fn by_name_through_both_sidecars(kind: Sidecars) {
    let mesh = start(kind, &[("reviews-dr.yaml", REVIEWS_DR.to_string())]);
    let pp = mesh.pod("productpage-v1");
    let reviewers = [mesh.pod("reviews-v1"), mesh.pod("reviews-v2")];
    const OUTBOUND: &str = "outbound|9080||reviews.default.svc.cluster.local";
    const INBOUND: &str = "inbound|9080||";
    let istio = kind == Sidecars::WeftProxy;

    let by = first_ok(pp, REVIEWS_URL);
    assert!(by.starts_with("reviews-v"), "{kind:?}: answered by {by:?}");

    let client_before = (cluster_requests(pp, OUTBOUND), source_reported(pp));
    let serving_before: Vec<(u64, u64)> = reviewers
        .iter()
        .map(|p| (cluster_requests(p, INBOUND), destination_reported(p)))
        .collect();

    const N: usize = 20;
    let got = get_n(pp, REVIEWS_URL, N, &[]);
    assert_eq!(got.len(), N, "{kind:?}: {got:?}");
    let mut served = [0u64; 2];
    for (code, by) in &got {
        assert_eq!(code, "200", "{kind:?}: {got:?}");
        let i = reviewers
            .iter()
            .position(|p| p.workload.pod == by)
            .unwrap_or_else(|| panic!("{kind:?}: answered by {by:?}, not a reviews pod"));
        served[i] += 1;
    }

    // Istio's metrics are weft-proxy's alone: on Envoy they are not compared.
    let istio_only = |count: u64| istio.then_some(count);
    let client = (cluster_requests(pp, OUTBOUND), source_reported(pp));
    let n = N as u64;
    assert_eq!(
        (
            client.0 - client_before.0,
            istio_only(client.1 - client_before.1)
        ),
        (n, istio_only(n)),
        "{kind:?}: productpage's sidecar carried and reported (reporter=source) every call \
         ({OUTBOUND} requests, istio_requests_total):\n{}",
        pp.admin("/stats/prometheus")
    );
    for (i, p) in reviewers.iter().enumerate() {
        let (inbound, reported) = (cluster_requests(p, INBOUND), destination_reported(p));
        let (inbound_before, reported_before) = serving_before[i];
        assert_eq!(
            (
                inbound - inbound_before,
                istio_only(reported - reported_before)
            ),
            (served[i], istio_only(served[i])),
            "{kind:?}: {} served {} calls ({INBOUND} requests, istio_requests_total):\n{}",
            p.workload.pod,
            served[i],
            p.admin("/stats/prometheus")
        );
    }

    // istioctl's view of the sidecar: the capture listeners and the service port's.
    for p in [pp, reviewers[0]] {
        let out = p.weftctl(&["proxy-config", "listeners", ADMIN, "-o", "json"]);
        let table = stdout(&out);
        assert!(out.status.success(), "{kind:?}: {out:?}");
        for listener in ["virtualOutbound", "virtualInbound", "0.0.0.0_9080"] {
            assert!(
                table.contains(&format!("\"name\": \"{listener}\"")),
                "{kind:?}: {}: no {listener} in\n{table}",
                p.workload.pod
            );
        }
    }
}

#[test]
#[ignore = "needs root: network namespaces"]
fn an_app_calls_reviews_by_name_through_both_sidecars_and_both_report_it() {
    require_root(NEEDS);
    by_name_through_both_sidecars(Sidecars::WeftProxy);
}

#[test]
#[ignore = "needs root (network namespaces) and Envoy"]
fn an_app_calls_reviews_by_name_through_both_sidecars_on_envoy() {
    require_root(NEEDS);
    by_name_through_both_sidecars(Sidecars::Envoy);
}

fn header_and_weights(kind: Sidecars) {
    let mesh = start(
        kind,
        &[
            ("reviews-dr.yaml", REVIEWS_DR.to_string()),
            ("reviews-vs.yaml", REVIEWS_VS.to_string()),
        ],
    );
    let pp = mesh.pod("productpage-v1");
    first_ok(pp, REVIEWS_URL);

    let jason = get_n(pp, REVIEWS_URL, 30, &["end-user: jason"]);
    assert_eq!(jason.len(), 30, "{kind:?}: {jason:?}");
    for (code, by) in &jason {
        assert_eq!(
            (code.as_str(), by.as_str()),
            ("200", "reviews-v2"),
            "{kind:?}: {jason:?}"
        );
    }

    const N: usize = 400;
    let got = get_n(pp, REVIEWS_URL, N, &[]);
    assert_eq!(got.len(), N, "{kind:?}: {got:?}");
    let (mut v1, mut v2) = (0, 0);
    for (code, by) in &got {
        assert_eq!(code, "200", "{kind:?}: {got:?}");
        match by.as_str() {
            "reviews-v1" => v1 += 1,
            "reviews-v2" => v2 += 1,
            other => panic!("{kind:?}: answered by {other:?}"),
        }
    }
    // Binomial(400, 0.8): mean 320, standard deviation 8; five deviations either side.
    assert!(
        (280..=360).contains(&v1),
        "{kind:?}: v1 got {v1} of {N}, v2 {v2}"
    );
}

#[test]
#[ignore = "needs root: network namespaces"]
fn the_virtual_service_routes_by_header_exactly_and_splits_by_weight() {
    require_root(NEEDS);
    header_and_weights(Sidecars::WeftProxy);
}

#[test]
#[ignore = "needs root (network namespaces) and Envoy"]
fn the_virtual_service_routes_by_header_exactly_and_splits_by_weight_on_envoy() {
    require_root(NEEDS);
    header_and_weights(Sidecars::Envoy);
}

/// Sends `payload` from inside the pod to `addr` on a plain TCP connection and prints what
/// comes back, as many bytes as were sent.
const TCP_ROUND_TRIP: &str = r#"
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
data = sys.stdin.buffer.read()
s = socket.create_connection((host, port), timeout=10)
s.sendall(data)
got = bytearray()
while len(got) < len(data):
    chunk = s.recv(65536)
    if not chunk:
        break
    got += chunk
sys.stdout.buffer.write(got)
"#;

/// 64 KiB of random bytes starting with a zero byte, which neither HTTP nor TLS starts with.
fn opaque_payload() -> Vec<u8> {
    let mut payload: Vec<u8> = (0..65_536).map(|_| rand::random::<u8>()).collect();
    payload[0] = 0;
    payload
}

fn tcp_round_trip(pod: &AppPod, host: &str, port: u16, payload: &[u8]) -> Vec<u8> {
    let mut child = pod
        .pod
        .command("python3")
        .args(["-c", TCP_ROUND_TRIP, host, &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(payload).expect("write payload");
    drop(stdin);
    let out = child.wait_with_output().expect("python3");
    assert!(out.status.success(), "{out:?}");
    out.stdout
}

fn passthrough_connections(pod: &AppPod) -> u64 {
    prometheus_sum(
        &pod.admin("/stats/prometheus"),
        "envoy_cluster_upstream_cx_total",
        &[("cluster_name", "PassthroughCluster")],
    )
}

/// Connects to `host:port`, sends a few opaque bytes and reports how the connection ended:
/// `refused`, `reset`, `closed` (EOF), `data`, or `hung` (nothing within 10 s).
const DEAD_PORT_PROBE: &str = r#"
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
    s.sendall(b"\x00not http\n")
    print("closed" if not s.recv(1) else "data")
except ConnectionRefusedError:
    print("refused")
except ConnectionResetError:
    print("reset")
except socket.timeout:
    print("hung")
"#;

/// How a connection to a dead port ends, for opaque TCP (the probe) and for HTTP (curl's
/// exit code and status): the first must be refused, reset or closed; the second may also
/// be a 503 from the sidecar, as Istio's HTTP inbound chain answers; neither may hang.
fn assert_dead_port_fails_fast(from: &str, mut probe: Command, mut http: Command, host: &str) {
    let out = run_ok(probe.args(["-c", DEAD_PORT_PROBE, host, "9999"]));
    let ended = stdout(&out);
    assert!(
        // The sidecar resets a connection it could not take anywhere, as Envoy does: a clean
        // close would read as an empty answer.
        matches!(ended.trim(), "refused" | "reset"),
        "opaque TCP to {host}:9999 from {from}: {ended}"
    );
    let url = format!("http://{host}:9999/");
    let out = curl(&mut http, &["-o", "/dev/null", "-w", "%{http_code}", &url]);
    let (code, status) = (out.status.code(), stdout(&out));
    assert!(
        matches!(code, Some(7 | 56)) || (code == Some(0) && status == "503"),
        "{url} from {from}: curl exit {code:?}, status {status} (7 refused, 56 reset; not 52 \
         empty reply, nor 28 hung until --max-time)"
    );
}

#[test]
#[ignore = "needs root: network namespaces"]
fn traffic_outside_the_mesh_passes_through_and_a_dead_inbound_port_is_refused_at_once() {
    require_root(NEEDS);
    outside_and_dead_port(Sidecars::WeftProxy);
}

#[test]
#[ignore = "needs root (network namespaces) and Envoy"]
fn traffic_outside_the_mesh_passes_through_and_a_dead_inbound_port_is_refused_on_envoy() {
    require_root(NEEDS);
    outside_and_dead_port(Sidecars::Envoy);
}

fn outside_and_dead_port(kind: Sidecars) {
    let mesh = start(kind, &[]);
    let pp = mesh.pod("productpage-v1");
    let reviews = mesh.pod("reviews-v1");
    first_ok(pp, REVIEWS_URL);
    let gateway = mesh.network.gateway.clone();

    // HTTP to an address no service has: PassthroughCluster under ALLOW_ANY.
    let _outside = mesh.start_outside_app("outside", 18080);
    let before = passthrough_connections(pp);
    let url = format!("http://{gateway}:18080/anything");
    let got = get_n(pp, &url, 1, &[]);
    assert_eq!(
        got,
        [("200".to_string(), "outside-v1".to_string())],
        "{url}"
    );
    assert!(
        passthrough_connections(pp) > before,
        "the call went through the sidecar's PassthroughCluster:\n{}",
        pp.admin("/stats/prometheus")
    );

    // Opaque TCP (bytes no sniffer takes for HTTP or TLS) to a port no service has: relayed
    // byte for byte.
    let echo = TcpEcho::start(&format!("{gateway}:18081"));
    let payload = opaque_payload();
    let before = passthrough_connections(pp);
    let back = tcp_round_trip(pp, &gateway, echo.addr.port(), &payload);
    assert_eq!(back.len(), payload.len());
    assert!(back == payload, "the echo came back changed");
    assert!(
        passthrough_connections(pp) > before,
        "the TCP connection went through the sidecar's PassthroughCluster"
    );

    // Inbound from outside the mesh to the app's port goes through the sidecar to the app.
    let app_url = format!("http://{}:{APP_PORT}/health", reviews.pod.ip);
    let out = curl(
        &mut Command::new("curl"),
        &["-w", "%{http_code}", "-o", "/dev/null", &app_url],
    );
    assert_eq!(stdout(&out), "200", "{app_url}: {out:?}");

    // A port nothing listens on inside the pod: the sidecar accepted the redirected connection,
    // cannot reach the app, and ends it rather than leaving the caller hanging.
    let ip = &reviews.pod.ip;
    assert_dead_port_fails_fast(
        "the root namespace",
        Command::new("python3"),
        Command::new("curl"),
        ip,
    );
    assert_dead_port_fails_fast(
        "productpage's pod",
        pp.pod.command("python3"),
        pp.pod.command("curl"),
        ip,
    );
}

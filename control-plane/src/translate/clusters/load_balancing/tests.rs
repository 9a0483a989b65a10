//! DestinationRule load balancing in the clusters: policy, hash, slow start, and istiod's
//! merge of rule, subset and port-level settings.

use super::super::clusters;
use super::DEFAULT_MINIMUM_RING_SIZE;
use crate::translate::{MeshSnapshot, TranslateOptions};
use xds_protos::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbConfig, LbPolicy, SlowStartConfig,
};
use xds_protos::pb::envoy::config::cluster::v3::Cluster;

fn mesh_with_rule(rule_spec: &str) -> MeshSnapshot {
    super::super::test_support::mesh_with_rule("reviews", (9080, 9090), rule_spec)
}

/// The cluster of `port` and `subset` ("" for all endpoints).
fn cluster(mesh: &MeshSnapshot, port: u32, subset: &str) -> Cluster {
    super::super::test_support::cluster_of(mesh, "reviews", port, subset)
}

fn policy(c: &Cluster) -> LbPolicy {
    LbPolicy::try_from(c.lb_policy).expect("a known policy")
}

const SUBSETS: &str =
    "  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n";

#[test]
fn without_a_rule_the_policy_is_istios_default_least_request() {
    let mesh = mesh_with_rule("");
    let c = cluster(&mesh, 9080, "");
    assert_eq!(policy(&c), LbPolicy::LeastRequest);
    assert_eq!(c.lb_config, None);
}

#[test]
fn simple_policies_map_to_envoys() {
    for (simple, expected) in [
        ("ROUND_ROBIN", LbPolicy::RoundRobin),
        ("LEAST_REQUEST", LbPolicy::LeastRequest),
        ("LEAST_CONN", LbPolicy::LeastRequest),
        ("RANDOM", LbPolicy::Random),
        ("UNSPECIFIED", LbPolicy::LeastRequest),
    ] {
        let mesh = mesh_with_rule(&format!(
            "  trafficPolicy: {{loadBalancer: {{simple: {simple}}}}}\n{SUBSETS}"
        ));
        for subset in ["", "v1", "v2"] {
            let c = cluster(&mesh, 9080, subset);
            assert_eq!(policy(&c), expected, "{simple} on {}", c.name);
            assert_eq!(c.lb_config, None);
        }
    }
}

#[test]
fn a_subset_policy_overrides_the_rules() {
    let mesh = mesh_with_rule(
        "  trafficPolicy: {loadBalancer: {simple: RANDOM}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - name: v2
    labels: {version: v2}
    trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  - name: v3
    labels: {version: v3}
    trafficPolicy: {connectionPool: {tcp: {maxConnections: 5}}}
",
    );
    assert_eq!(policy(&cluster(&mesh, 9080, "")), LbPolicy::Random);
    assert_eq!(policy(&cluster(&mesh, 9080, "v1")), LbPolicy::Random);
    assert_eq!(policy(&cluster(&mesh, 9080, "v2")), LbPolicy::RoundRobin);
    // A subset policy without a balancer keeps the rule's.
    assert_eq!(policy(&cluster(&mesh, 9080, "v3")), LbPolicy::Random);
}

#[test]
fn port_level_settings_win_for_their_port_and_replace_the_top_level_whole() {
    let mesh = mesh_with_rule(
        "  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    portLevelSettings:
    - port: {number: 9090}
      loadBalancer: {simple: RANDOM}
  subsets:
  - {name: v1, labels: {version: v1}}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      portLevelSettings:
      - port: {number: 9080}
        connectionPool: {tcp: {maxConnections: 5}}
",
    );
    assert_eq!(policy(&cluster(&mesh, 9080, "")), LbPolicy::RoundRobin);
    assert_eq!(policy(&cluster(&mesh, 9090, "")), LbPolicy::Random);
    assert_eq!(policy(&cluster(&mesh, 9090, "v1")), LbPolicy::Random);
    // v2's entry for 9080 has no balancer: the default, not the rule's ROUND_ROBIN.
    assert_eq!(policy(&cluster(&mesh, 9080, "v2")), LbPolicy::LeastRequest);
    // v2 has no entry for 9090: the rule's port-level RANDOM.
    assert_eq!(policy(&cluster(&mesh, 9090, "v2")), LbPolicy::Random);
}

#[test]
fn consistent_hashing_is_ring_hash_or_maglev() {
    let cases = [
        (
            "{httpHeaderName: x-user}",
            LbPolicy::RingHash,
            Some(DEFAULT_MINIMUM_RING_SIZE),
        ),
        (
            "{httpCookie: {name: session, ttl: 0s}, ringHash: {minimumRingSize: 2048}}",
            LbPolicy::RingHash,
            Some(2048),
        ),
        (
            "{useSourceIp: true, minimumRingSize: 512}",
            LbPolicy::RingHash,
            Some(512),
        ),
        (
            "{httpQueryParameterName: q, ringHash: {}}",
            LbPolicy::RingHash,
            None,
        ),
        (
            "{useSourceIp: true, maglev: {tableSize: 65537}}",
            LbPolicy::Maglev,
            Some(65537),
        ),
    ];
    for (hash, expected, size) in cases {
        let mesh = mesh_with_rule(&format!(
            "  trafficPolicy: {{loadBalancer: {{consistentHash: {hash}}}}}\n"
        ));
        let c = cluster(&mesh, 9080, "");
        assert_eq!(policy(&c), expected, "{hash}");
        let got = match &c.lb_config {
            None => None,
            Some(LbConfig::RingHashLbConfig(r)) => r.minimum_ring_size.map(|v| v.value),
            Some(LbConfig::MaglevLbConfig(m)) => m.table_size.map(|v| v.value),
            Some(other) => panic!("{hash}: unexpected {other:?}"),
        };
        assert_eq!(got, size, "{hash}");
    }
}

fn slow_start(c: &Cluster) -> Option<&SlowStartConfig> {
    match c.lb_config.as_ref()? {
        LbConfig::RoundRobinLbConfig(rr) => rr.slow_start_config.as_ref(),
        LbConfig::LeastRequestLbConfig(lr) => lr.slow_start_config.as_ref(),
        _ => None,
    }
}

#[test]
fn warmup_is_the_slow_start_of_round_robin_and_least_request() {
    let mesh = mesh_with_rule(
        "  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      warmup: {duration: 30s, aggression: 2, minimumPercent: 5}
",
    );
    let c = cluster(&mesh, 9080, "");
    assert!(matches!(c.lb_config, Some(LbConfig::RoundRobinLbConfig(_))));
    let s = slow_start(&c).expect("slow start");
    assert_eq!(s.slow_start_window.as_ref().map(|d| d.seconds), Some(30));
    let aggression = s.aggression.as_ref().expect("aggression");
    assert_eq!(aggression.default_value, 2.0);
    assert!(!aggression.runtime_key.is_empty(), "Envoy requires a key");
    assert_eq!(s.min_weight_percent.as_ref().map(|p| p.value), Some(5.0));

    // istiod's defaults: linear, from 10%; the default policy is least request.
    let mesh = mesh_with_rule("  trafficPolicy: {loadBalancer: {warmup: {duration: 1m}}}\n");
    let c = cluster(&mesh, 9080, "");
    assert_eq!(policy(&c), LbPolicy::LeastRequest);
    assert!(matches!(
        c.lb_config,
        Some(LbConfig::LeastRequestLbConfig(_))
    ));
    let s = slow_start(&c).expect("slow start");
    assert_eq!(s.slow_start_window.as_ref().map(|d| d.seconds), Some(60));
    assert_eq!(s.aggression.as_ref().map(|a| a.default_value), Some(1.0));
    assert_eq!(s.min_weight_percent.as_ref().map(|p| p.value), Some(10.0));

    // The deprecated warmupDurationSecs sets the window alone.
    let mesh = mesh_with_rule(
        "  trafficPolicy: {loadBalancer: {simple: LEAST_CONN, warmupDurationSecs: 10s}}\n",
    );
    let s = slow_start(&cluster(&mesh, 9080, ""))
        .cloned()
        .expect("slow start");
    assert_eq!(s.slow_start_window.map(|d| d.seconds), Some(10));
    assert_eq!(s.aggression, None);
    assert_eq!(s.min_weight_percent, None);

    // RANDOM has no slow start.
    let mesh = mesh_with_rule(
        "  trafficPolicy: {loadBalancer: {simple: RANDOM, warmup: {duration: 30s}}}\n",
    );
    assert_eq!(cluster(&mesh, 9080, "").lb_config, None);
}

#[test]
fn passthrough_is_an_original_destination_cluster() {
    let mesh = mesh_with_rule(&format!(
        "  trafficPolicy: {{loadBalancer: {{simple: PASSTHROUGH}}}}\n{SUBSETS}"
    ));
    for subset in ["", "v1"] {
        let c = cluster(&mesh, 9080, subset);
        assert_eq!(policy(&c), LbPolicy::ClusterProvided);
        assert_eq!(
            c.cluster_discovery_type,
            Some(ClusterDiscoveryType::Type(
                DiscoveryType::OriginalDst as i32
            ))
        );
        assert_eq!(c.eds_cluster_config, None);
        assert_eq!(c.load_assignment, None);
    }
}

#[test]
fn services_without_resolution_keep_cluster_provided() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("se.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: any, namespace: default}\nspec:\n  hosts: [any.example.com]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: NONE\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: any, namespace: default}\nspec:\n  host: any.example.com\n  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n",
    )
    .expect("write");
    let (config, _) = crate::source::load_dir(dir.path());
    let mesh = MeshSnapshot::new(config, TranslateOptions::default());
    let c = clusters(&mesh)
        .into_iter()
        .find(|c| c.name == "outbound|80||any.example.com")
        .expect("cluster");
    assert_eq!(policy(&c), LbPolicy::ClusterProvided);
}

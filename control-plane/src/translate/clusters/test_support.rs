//! A mesh of one two-port service and a DestinationRule, for the tests of what the rule makes
//! of the clusters.

use super::clusters;
use crate::translate::{MeshSnapshot, TranslateOptions};
use xds_protos::pb::envoy::config::cluster::v3::Cluster;

/// `name` on ports `ports.0` (`http`) and `ports.1` (`http-admin`), static endpoints 10.0.0.1
/// (version v1) and 10.0.0.2 (v2), with a DestinationRule for it whose spec after `host` is
/// `rule_spec` (none when empty).
pub(super) fn mesh_with_rule(name: &str, ports: (u32, u32), rule_spec: &str) -> MeshSnapshot {
    let service = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  hosts: [{name}.default.svc.cluster.local]\n  ports: [{{number: {}, name: http, protocol: HTTP}}, {{number: {}, name: http-admin, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints:\n  - {{address: 10.0.0.1, labels: {{version: v1}}}}\n  - {{address: 10.0.0.2, labels: {{version: v2}}}}\n",
        ports.0, ports.1
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("se.yaml"), service).expect("write");
    if !rule_spec.is_empty() {
        let rule = format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  host: {name}\n{rule_spec}"
        );
        std::fs::write(dir.path().join("dr.yaml"), rule).expect("write");
    }
    let (config, diagnostics) = crate::source::load_dir(dir.path());
    assert!(
        diagnostics.iter().all(|d| !d.is_error()),
        "{diagnostics:#?}"
    );
    MeshSnapshot::new(config, TranslateOptions::default())
}

/// The cluster of `name`'s `port` and `subset` ("" for all endpoints).
pub(super) fn cluster_of(mesh: &MeshSnapshot, name: &str, port: u32, subset: &str) -> Cluster {
    let cluster = format!("outbound|{port}|{subset}|{name}.default.svc.cluster.local");
    clusters(mesh)
        .into_iter()
        .find(|c| c.name == cluster)
        .unwrap_or_else(|| panic!("no cluster {cluster}"))
}

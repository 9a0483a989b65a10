use super::*;
use crate::model::{parse_file, AnyResource, ConfigSet};
use std::path::Path;

fn config(text: &str) -> ConfigSet {
    let (resources, diagnostics) = parse_file(Path::new("r.yaml"), text);
    assert!(
        diagnostics.iter().all(|d| !d.is_error()),
        "{diagnostics:#?}"
    );
    ConfigSet::from_resources(resources)
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn inline_endpoints_give_one_service_per_host() {
    let registry = Registry::build(&config(
        "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: prod}
spec:
  hosts: [reviews.prod.svc.cluster.local, reviews.example.com]
  addresses: [240.0.0.10]
  ports:
  - {number: 9080, name: http, targetPort: 8080}
  - {number: 9090, name: metrics}
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.1, labels: {version: v1}, ports: {http: 7000}, weight: 3}
  - {address: 10.0.0.2, labels: {version: v2}}
",
    ));
    let hosts: Vec<&str> = registry
        .services
        .iter()
        .map(|s| s.hostname.as_str())
        .collect();
    assert_eq!(
        hosts,
        ["reviews.example.com", "reviews.prod.svc.cluster.local"]
    );
    let svc = registry
        .service("reviews.prod.svc.cluster.local")
        .expect("service");
    assert_eq!(svc.namespace, "prod");
    assert_eq!(svc.resolution, Resolution::Static);
    assert_eq!(svc.addresses, ["240.0.0.10"]);
    assert_eq!(svc.endpoints.len(), 2);
    assert_eq!(svc.endpoints[0].weight, 3);
    assert_eq!(svc.endpoints[1].weight, 1);

    let http = &svc.ports[0];
    let metrics = &svc.ports[1];
    assert_eq!(
        svc.endpoint_port(&svc.endpoints[0], http),
        7000,
        "the endpoint's own port wins"
    );
    assert_eq!(
        svc.endpoint_port(&svc.endpoints[1], http),
        8080,
        "then targetPort"
    );
    assert_eq!(
        svc.endpoint_port(&svc.endpoints[1], metrics),
        9090,
        "then the port number"
    );
    assert!(registry.service("nothing").is_none());
}

#[test]
fn a_workload_selector_picks_workload_entries_of_its_namespace() {
    let registry = Registry::build(&config(
        "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings}
spec:
  hosts: [ratings.default.svc.cluster.local]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1}
spec: {address: 10.0.1.1, labels: {app: ratings, version: v1}, weight: 5}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-2, labels: {version: v2}}
spec: {address: 10.0.1.2, labels: {app: ratings}, ports: {http: 19080}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: other-app}
spec: {address: 10.0.1.3, labels: {app: details}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-elsewhere, namespace: prod}
spec: {address: 10.0.1.4, labels: {app: ratings}}
",
    ));
    let svc = registry
        .service("ratings.default.svc.cluster.local")
        .expect("service");
    let addresses: Vec<&str> = svc.endpoints.iter().map(|e| e.address.as_str()).collect();
    assert_eq!(addresses, ["10.0.1.1", "10.0.1.2"]);
    assert_eq!(svc.endpoints[0].weight, 5);
    assert_eq!(
        svc.endpoints[1].labels,
        labels(&[("app", "ratings"), ("version", "v2")])
    );
    assert_eq!(svc.endpoint_port(&svc.endpoints[1], &svc.ports[0]), 19080);
}

#[test]
fn the_first_service_entry_for_a_host_provides_it() {
    let one = "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a}
spec:
  hosts: [x.example.com]
  ports: [{number: 80, name: http}]
  resolution: DNS
";
    let two = one
        .replace("name: a", "name: b")
        .replace("resolution: DNS", "resolution: NONE");
    let registry = Registry::build(&config(&format!("{two}---\n{one}")));
    assert_eq!(registry.services.len(), 1);
    assert_eq!(registry.services[0].resolution, Resolution::Dns);
    let _ = AnyResource::kind;
}

#[test]
fn subsets_match_on_all_their_labels() {
    let endpoint = labels(&[("app", "reviews"), ("version", "v1")]);
    assert!(subset_matches(&labels(&[("version", "v1")]), &endpoint));
    assert!(subset_matches(&labels(&[]), &endpoint));
    assert!(!subset_matches(&labels(&[("version", "v2")]), &endpoint));
    assert!(!subset_matches(
        &labels(&[("version", "v1"), ("zone", "a")]),
        &endpoint
    ));
}

#[test]
fn workload_entries_name_their_workload_as_istiod_does() {
    let registry = Registry::build(&config(
        "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: prod}
spec:
  hosts: [reviews.prod.svc.cluster.local]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-vm-1, namespace: prod}
spec: {address: 10.0.0.1, labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-vm-2, namespace: prod}
spec:
  address: 10.0.0.2
  labels: {app: reviews, service.istio.io/workload-name: reviews-v2}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: prod}
spec:
  hosts: [ext.example.com]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.9}]
",
    ));
    let names = |host: &str| -> Vec<(String, String)> {
        registry
            .service(host)
            .expect("service")
            .endpoints
            .iter()
            .map(|e| (e.workload_name.clone(), e.workload_namespace.clone()))
            .collect()
    };
    let owned = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        names("reviews.prod.svc.cluster.local"),
        [owned("reviews-vm-1", "prod"), owned("reviews-v2", "prod")]
    );
    // A ServiceEntry's inline endpoints are no named workload, for istiod either.
    assert_eq!(names("ext.example.com"), [owned("", "")]);
}

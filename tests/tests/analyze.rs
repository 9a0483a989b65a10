//! `weftctl analyze`: clean folders pass, errors fail with file, resource and field named.

use std::process::Command;
use weft_e2e::procs::bin;

fn analyze(dir: &std::path::Path) -> (i32, String) {
    let out = Command::new(bin("weftctl"))
        .arg("analyze")
        .arg(dir)
        .output()
        .expect("run weftctl");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn the_bookinfo_example_has_no_problems() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bookinfo");
    let (code, text) = analyze(&dir);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("no problems"), "{text}");
}

#[test]
fn errors_name_file_resource_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("vs.yaml"),
        r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 60
    - destination: {host: reviews, subset: v2}
      weight: 30
"#,
    )
    .expect("write");
    std::fs::write(dir.path().join("broken.yaml"), "kind: [unclosed\n").expect("write");
    let (code, text) = analyze(dir.path());
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("vs.yaml"), "{text}");
    assert!(text.contains("VirtualService default/reviews"), "{text}");
    assert!(text.contains("spec.http[0].route"), "{text}");
    assert!(text.contains("broken.yaml"), "{text}");
}

#[test]
fn not_yet_acted_on_fields_warn_but_pass() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("vs.yaml"),
        r#"apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: ratings
  namespace: default
spec:
  host: ratings
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    connectionPool: {tcp: {maxConnections: 10}, http: {h2UpgradePolicy: UPGRADE}}
"#,
    )
    .expect("write");
    let (code, text) = analyze(dir.path());
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("connectionPool.http.h2UpgradePolicy"),
        "{text}"
    );
    assert!(
        !text.contains("loadBalancer") && !text.contains("maxConnections"),
        "load balancing and connection limits are acted on: {text}"
    );
}

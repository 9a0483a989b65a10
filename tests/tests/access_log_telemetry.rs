//! Access logs configured the way Istio's are: a Telemetry resource that turns them off for
//! one workload silences its proxy while another's keeps logging (and removing it brings the
//! lines back), and MeshConfig's `accessLogEncoding` / `accessLogFormat` set the line.

use std::time::Duration;
use weft_e2e::client::ProxyConn;
use weft_e2e::config::{service_entry, Mesh, Proxy};
use weft_e2e::eventually;
use weft_e2e::upstream::Echo;

const QUIET_TELEMETRY: &str = "apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: quiet, namespace: default}
spec:
  selector:
    matchLabels: {app: quiet}
  accessLogging:
  - providers: [{name: envoy}]
    disabled: true
";

async fn get_ok(proxy: &Proxy, request_id: &str) {
    let r = ProxyConn::new(proxy.outbound)
        .get("http://ratings:9080/r", &[("x-request-id", request_id)])
        .await
        .expect("request");
    assert_eq!(r.status, 200, "{request_id}");
}

#[tokio::test(flavor = "multi_thread")]
async fn telemetry_silences_one_workload_and_not_another() {
    let echo = Echo::start("ratings-v1").await;
    let mut mesh = Mesh::new();
    mesh.write(
        "se.yaml",
        &service_entry("ratings", 9080, "HTTP", &[(echo.port(), "v1")]),
    );
    mesh.write("telemetry.yaml", QUIET_TELEMETRY);
    mesh.start_weftd().await;
    let quiet = mesh
        .start_proxy_with_labels("quiet", "default", "app=quiet")
        .await;
    let loud = mesh
        .start_proxy_with_labels("loud", "default", "app=loud")
        .await;

    // The quiet proxy's request completes first; the loud one's line proves lines are being
    // written by then.
    get_ok(&quiet, "quiet-1").await;
    get_ok(&loud, "loud-1").await;
    eventually("the loud proxy's line", Duration::from_secs(10), || {
        let log = loud.proc.log();
        async move { log.contains("\"loud-1\"").then_some(()) }
    })
    .await;
    get_ok(&loud, "loud-2").await;
    eventually(
        "the loud proxy's second line",
        Duration::from_secs(10),
        || {
            let log = loud.proc.log();
            async move { log.contains("\"loud-2\"").then_some(()) }
        },
    )
    .await;
    let quiet_log = quiet.proc.log();
    assert!(
        !quiet_log.contains("quiet-1"),
        "the Telemetry turned this workload's access log off:\n{quiet_log}"
    );

    // Without the Telemetry, weftd's default (Istio's text line) is back for it too.
    mesh.remove("telemetry.yaml");
    let mut n = 0;
    eventually(
        "the quiet proxy logging again",
        Duration::from_secs(20),
        || {
            n += 1;
            let id = format!("quiet-again-{n}");
            let quiet = &quiet;
            async move {
                get_ok(quiet, &id).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                let log = quiet.proc.log();
                log.lines()
                    .find(|l| l.contains(&format!("\"{id}\"")))
                    .map(str::to_string)
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mesh_config_json_encoding_with_a_custom_format() {
    let echo = Echo::start("ratings-v1").await;
    let mut mesh = Mesh::new();
    let mesh_config = mesh.logs.path().join("mesh.yaml");
    std::fs::write(
        &mesh_config,
        "accessLogFile: /dev/stdout\naccessLogEncoding: JSON\n\
         accessLogFormat: '{\"code\": \"%RESPONSE_CODE%\", \"id\": \"%REQ(X-REQUEST-ID)%\", \
         \"upstream\": {\"cluster\": \"%UPSTREAM_CLUSTER%\"}}'\n",
    )
    .expect("write mesh config");
    mesh.weftd_args = vec!["--mesh-config".into(), mesh_config.display().to_string()];
    mesh.write(
        "se.yaml",
        &service_entry("ratings", 9080, "HTTP", &[(echo.port(), "v1")]),
    );
    mesh.start_weftd().await;
    let proxy = mesh.start_proxy("client", "default").await;
    get_ok(&proxy, "custom-json-1").await;
    let entry = eventually("a JSON access log line", Duration::from_secs(10), || {
        let log = proxy.proc.log();
        async move {
            log.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| v["id"] == "custom-json-1")
        }
    })
    .await;
    let keys: Vec<&String> = entry.as_object().expect("an object").keys().collect();
    assert_eq!(keys, ["code", "id", "upstream"], "{entry}");
    assert_eq!(entry["code"], 200);
    assert_eq!(
        entry["upstream"]["cluster"],
        "outbound|9080||ratings.default.svc.cluster.local"
    );
}

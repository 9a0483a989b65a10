//! `weftctl up` on a copy of examples/bookinfo: the local mesh starts, the curl line it prints
//! works, its requests are traced to the collector `--otlp` names, weftd's reloads and config
//! errors show in up's own output, and Ctrl-C stops it cleanly and removes its log folder.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use weft_e2e::client::ProxyConn;
use weft_e2e::otlp::OtlpReceiver;
use weft_e2e::procs::bin;
use weft_e2e::{eventually, free_port, free_port_range};

/// Bounds each wait for a line of up's output (it includes starting the whole mesh).
const LINE_PATIENCE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread")]
async fn weftctl_up_bookinfo_answers_the_printed_curl_and_reports_reloads() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bookinfo");
    let folder = tempfile::tempdir().expect("temp dir");
    copy_yaml(&examples, folder.path());
    let collector = OtlpReceiver::start().await;
    // Free ports for everything, apps included, so the test runs beside a developer's mesh.
    let port = || free_port().to_string();
    let mut child = Command::new(bin("weftctl"))
        .arg("up")
        .arg(folder.path())
        .args(["--xds-port", &port(), "--http-port", &port()])
        .args(["--ingress-port", &port(), "--ingress-admin-port", &port()])
        .args(["--sidecar-outbound-base", &free_port_range(6).to_string()])
        .args(["--sidecar-admin-base", &free_port_range(6).to_string()])
        .args(["--app-port-base", &free_port_range(6).to_string()])
        .args(["--otlp", &collector.addr.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start weftctl up");
    // If the test fails half-way, stop the mesh rather than leave it holding ports.
    let _stop = Stop(child.id());
    let mut out = Output::read(&mut child);

    out.wait_for("the tracing line", |l| {
        l.starts_with("traces: every request")
    });
    let logs = out.wait_for("the log folder", |l| l.starts_with("logs:"));
    let log_dir = PathBuf::from(
        logs.trim_start_matches("logs:")
            .split_whitespace()
            .next()
            .expect("log folder path"),
    );
    out.wait_for("weftd's first load", |l| {
        l.starts_with("weftd: loaded ") && l.contains("no problems")
    });
    let curl = out.wait_for("the curl line", |l| l.trim_start().starts_with("curl "));
    // `curl -x http://127.0.0.1:PORT http://productpage:9080/productpage`
    let words: Vec<&str> = curl.split_whitespace().collect();
    let proxy = words
        .iter()
        .position(|w| *w == "-x")
        .and_then(|i| words.get(i + 1))
        .and_then(|p| p.trim_start_matches("http://").parse().ok())
        .expect("proxy address in the curl line");
    let url = words.last().expect("url");
    let reply = ProxyConn::new(proxy)
        .get(url, &[])
        .await
        .expect("the printed curl works");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["served_by"], "productpage-v1", "{body}");
    assert!(
        body["details"]["served_by"]
            .as_str()
            .is_some_and(|s| s.starts_with("details")),
        "{body}"
    );
    assert!(
        body["reviews"]["served_by"]
            .as_str()
            .is_some_and(|s| s.starts_with("reviews")),
        "{body}"
    );
    // --otlp: the ingress proxy's span of that request reaches the collector.
    let span = eventually("the curl's span", Duration::from_secs(30), || {
        let found = collector
            .spans()
            .into_iter()
            .find(|s| s.attr("http.url") == Some(url));
        async move { found }
    })
    .await;
    assert_eq!(span.attr("http.status_code"), Some("200"), "{span:?}");

    // A good change is reported as pushed; a bad one names file, position, resource and
    // field, and says the last good version stays.
    replace(&folder.path().join("routing.yaml"), &routing("v1"));
    out.wait_for("the reload", |l| {
        l.starts_with("weftd: reloaded: version") && l.contains("pushed")
    });
    replace(&folder.path().join("routing.yaml"), &routing("v9"));
    let error = out.wait_for("the config error", |l| {
        l.starts_with("weftd: ") && l.contains("routing.yaml:") && l.contains(": error: ")
    });
    assert!(
        error.contains("VirtualService default/reviews") && error.contains("spec.http[0]"),
        "{error}"
    );
    out.wait_for("last good version stays", |l| {
        l.starts_with("weftd: reloaded: nothing changed")
            && l.contains("the last good version stays for VirtualService default/reviews")
    });
    let log = std::fs::read_to_string(log_dir.join("weftd.log")).expect("weftd.log");
    assert!(log.contains("routing.yaml:"), "the log has it too:\n{log}");
    assert!(
        !log.contains('\x1b'),
        "no colour codes in log files:\n{log}"
    );

    // Ctrl-C: every process stops, up exits 0 and removes its log folder.
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().expect("wait");
    assert!(status.success(), "weftctl up exits 0 on Ctrl-C: {status}");
    assert!(
        !log_dir.exists(),
        "the log folder {} is removed on a clean stop",
        log_dir.display()
    );
}

/// The VirtualService `reviews`, all traffic to one subset.
fn routing(subset: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\n  \
         namespace: default\nspec:\n  hosts:\n  - reviews\n  http:\n  - route:\n    - destination:\n        \
         host: reviews\n        subset: {subset}\n"
    )
}

/// Writes `text` to `path` whole: a hidden file (which weftd does not read) renamed over it, so
/// weftd never reads half a file.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_file_name(".up-test.tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn copy_yaml(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(&path, to.join(path.file_name().expect("name"))).expect("copy");
        }
    }
}

/// up's stdout, line by line, echoed to the test's output.
struct Output(mpsc::Receiver<String>);

impl Output {
    fn read(child: &mut Child) -> Output {
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("up: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Output(rx)
    }

    /// The next line that `wanted` accepts; panics after [`LINE_PATIENCE`] without one.
    fn wait_for(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        loop {
            match self.0.recv_timeout(LINE_PATIENCE) {
                Ok(line) if wanted(&line) => return line,
                Ok(_) => continue,
                Err(e) => panic!("weftctl up printed no line for {what}: {e}"),
            }
        }
    }
}

struct Stop(u32);

impl Drop for Stop {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.to_string()])
                .status();
        }
    }
}

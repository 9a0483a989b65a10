//! `weftctl up examples/bookinfo`: the local mesh starts, and the curl line it prints works.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use weft_e2e::client::ProxyConn;
use weft_e2e::procs::bin;
use weft_e2e::{free_port, free_port_range};

#[tokio::test(flavor = "multi_thread")]
async fn weftctl_up_bookinfo_answers_the_printed_curl() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bookinfo");
    // Free ports rather than the defaults, so the test can run beside a developer's own mesh.
    let port = || free_port().to_string();
    let mut child = Command::new(bin("weftctl"))
        .arg("up")
        .arg(&examples)
        .args(["--xds-port", &port(), "--http-port", &port()])
        .args(["--ingress-port", &port(), "--ingress-admin-port", &port()])
        .args(["--sidecar-outbound-base", &free_port_range(6).to_string()])
        .args(["--sidecar-admin-base", &free_port_range(6).to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start weftctl up");
    let pid = child.id();
    // If the test fails half-way, stop the mesh rather than leave it holding ports.
    let _stop = Stop(pid);
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
    let curl = loop {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) if line.trim_start().starts_with("curl ") => break line,
            Ok(_) => continue,
            Err(e) => {
                let _ = child.kill();
                panic!("weftctl up printed no curl line: {e}");
            }
        }
    };
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

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().expect("wait");
    assert!(status.success(), "weftctl up exits 0 on SIGTERM: {status}");
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

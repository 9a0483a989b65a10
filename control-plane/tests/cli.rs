//! The weftd and weftctl command lines.

use std::process::Command;

#[test]
fn weftd_refuses_a_missing_config_folder() {
    let out = Command::new(env!("CARGO_BIN_EXE_weftd"))
        .args([
            "--config-dir",
            "/nonexistent/weft",
            "--xds-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run weftd");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a folder"));
}

#[test]
fn weftctl_lists_its_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_weftctl"))
        .arg("--help")
        .output()
        .expect("run weftctl");
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["up", "analyze", "bootstrap-envoy", "demo-app"] {
        assert!(help.contains(cmd), "{cmd} missing from:\n{help}");
    }
}

#[test]
fn bootstrap_envoy_chooses_the_xds_flavour() {
    let run = |delta: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_weftctl"));
        cmd.args([
            "bootstrap-envoy",
            "--node-id",
            "sidecar~127.0.0.1~a.default~default.svc.cluster.local",
        ]);
        if delta {
            cmd.arg("--delta");
        }
        String::from_utf8(cmd.output().expect("run weftctl").stdout).expect("utf-8")
    };
    assert!(run(false).contains("api_type: GRPC"));
    assert!(run(true).contains("api_type: DELTA_GRPC"));
}

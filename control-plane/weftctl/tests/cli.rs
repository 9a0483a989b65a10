//! weftctl's command line.

use std::process::Command;

#[test]
fn weftctl_lists_its_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_weftctl"))
        .arg("--help")
        .output()
        .expect("run weftctl");
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["up", "analyze", "bootstrap-envoy"] {
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

#[test]
fn the_demo_app_parses_its_command_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_weft-demo-app"))
        .arg("--help")
        .output()
        .expect("run weft-demo-app");
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--service", "--version", "--listen", "--proxy"] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

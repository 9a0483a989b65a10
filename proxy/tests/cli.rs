//! The weft-proxy command line: flags as documented, clear errors for bad ones.

use std::process::Command;

fn proxy() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weft-proxy"))
}

#[test]
fn help_lists_the_documented_flags() {
    let out = proxy().arg("--help").output().expect("run weft-proxy");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--xds-addr",
        "--node-id",
        "--outbound-addr",
        "--admin-addr",
        "--namespace",
        "--workload",
        "--labels",
        "--concurrency",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn malformed_labels_are_refused_with_a_reason() {
    let out = proxy()
        .args([
            "--xds-addr",
            "127.0.0.1:1",
            "--node-id",
            "x",
            "--outbound-addr",
            "127.0.0.1:0",
        ])
        .args(["--admin-addr", "127.0.0.1:0", "--labels", "app"])
        .output()
        .expect("run weft-proxy");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not key=value"));
}

#[test]
fn an_admin_address_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = proxy()
        .args([
            "--xds-addr",
            "127.0.0.1:1",
            "--node-id",
            "x",
            "--outbound-addr",
            "127.0.0.1:0",
        ])
        .args(["--admin-addr", &addr])
        .output()
        .expect("run weft-proxy");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot bind the admin address"), "{err}");
}

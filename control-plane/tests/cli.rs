//! weftd's command line.

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

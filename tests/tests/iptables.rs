//! `weftctl iptables` in a network namespace built as a pod: the rules it installs really send
//! the pod's outbound TCP to 15001 and inbound TCP to 15006 with the original destination
//! recoverable (SO_ORIGINAL_DST), the proxy's own uid passes untouched, excluded ports pass,
//! a second run changes nothing, `--clean` restores the table, and rules iptables refuses
//! leave nothing behind.

use std::process::{Child, Command, Stdio};
use weft_e2e::netns::{require_root, run_ok, Pod};
use weft_e2e::procs::bin;

const NEEDS: &str =
    "needs root, iptables and python3 (network namespaces); run with --include-ignored";

/// Listens on the given ports; answers each connection with "<listening port> <original
/// destination>" (SO_ORIGINAL_DST, or the local address when the connection was not
/// redirected) and closes it.
const ORIGDST_ECHO: &str = r#"
import socket, struct, sys, threading
SO_ORIGINAL_DST = 80
def serve(host, port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port)); s.listen(64)
    while True:
        c, _ = s.accept()
        try:
            raw = c.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
            dport, = struct.unpack("!H", raw[2:4]); dst = "%s:%d" % (socket.inet_ntoa(raw[4:8]), dport)
        except OSError:
            dst = "%s:%d" % c.getsockname()
        c.sendall(("%d %s\n" % (port, dst)).encode()); c.close()
host = sys.argv[1]
for p in sys.argv[2:]:
    threading.Thread(target=serve, args=(host, int(p)), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"#;

/// Connects (as `uid`, when given) and returns the first line of the answer.
const CONNECT: &str = r#"
import os, socket, sys, encodings.idna  # imported before dropping privileges
host, port, uid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if uid >= 0:
    os.setgid(uid); os.setuid(uid)
s = socket.create_connection((host, port), timeout=5)
print(s.makefile().readline().strip())
"#;

struct Server(Child);

impl Server {
    fn start(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().expect("stdout")),
            &mut line,
        )
        .expect("read ready line");
        assert_eq!(line.trim(), "ready", "echo server did not start");
        Server(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn echo_in(pod: &Pod, ports: &[&str]) -> Server {
    let mut cmd = pod.command("python3");
    cmd.args(["-c", ORIGDST_ECHO, "0.0.0.0"]).args(ports);
    Server::start(cmd)
}

fn echo_outside(host: &str, port: &str) -> Server {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", ORIGDST_ECHO, host, port]);
    Server::start(cmd)
}

fn connect(mut cmd: Command, host: &str, port: u16, uid: Option<u32>) -> String {
    let uid = uid.map_or("-1".to_string(), |u| u.to_string());
    let out = run_ok(cmd.args(["-c", CONNECT, host, &port.to_string(), &uid]));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn nat_table(pod: &Pod) -> String {
    let out = run_ok(pod.command("iptables-save").args(["-t", "nat"]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

fn weftctl_iptables(pod: &Pod, args: &[&str]) -> std::process::Output {
    pod.command(bin("weftctl").to_str().expect("utf-8 path"))
        .arg("iptables")
        .args(args)
        .output()
        .expect("run weftctl iptables")
}

#[test]
#[ignore = "needs root, iptables and python3 (network namespaces); run with --include-ignored"]
fn the_rules_intercept_a_pods_traffic_both_ways_and_clean_removes_them() {
    require_root(NEEDS);
    let pod = Pod::create("ipt", 231);
    let before = nat_table(&pod);
    // The "proxy" in the pod: outbound capture, inbound capture, and an excluded stats port.
    let _proxy = echo_in(&pod, &["15001", "15006", "15090"]);
    // A server outside the pod, at its gateway.
    let _outside = echo_outside(&pod.gateway, "8080");
    let outside = format!("{}:8080", pod.gateway);

    // Without rules: straight through.
    assert_eq!(
        connect(pod.command("python3"), &pod.gateway, 8080, None),
        format!("8080 {outside}")
    );

    let out = weftctl_iptables(&pod, &["--exclude-outbound-ports", "9999"]);
    assert!(out.status.success(), "{out:?}");
    let installed = nat_table(&pod);
    assert!(
        installed.contains("-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001"),
        "{installed}"
    );

    // The app's outbound call reaches the proxy, which can recover where it was going.
    assert_eq!(
        connect(pod.command("python3"), &pod.gateway, 8080, None),
        format!("15001 {outside}")
    );
    // The proxy's own connections (uid 1337) are not redirected.
    assert_eq!(
        connect(pod.command("python3"), &pod.gateway, 8080, Some(1337)),
        format!("8080 {outside}")
    );
    // Inbound from outside the pod reaches the inbound port, original destination intact.
    assert_eq!(
        connect(Command::new("python3"), &pod.ip, 9080, None),
        format!("15006 {}:9080", pod.ip)
    );
    // Istio's default inbound exclusions pass.
    assert_eq!(
        connect(Command::new("python3"), &pod.ip, 15090, None),
        format!("15090 {}:15090", pod.ip)
    );

    // A second run leaves the table exactly as the first did.
    let out = weftctl_iptables(&pod, &["--exclude-outbound-ports", "9999"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(nat_table(&pod), installed);

    // --clean removes exactly what was added.
    let out = weftctl_iptables(&pod, &["--clean"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(nat_table(&pod), before);
    assert_eq!(
        connect(pod.command("python3"), &pod.gateway, 8080, None),
        format!("8080 {outside}")
    );
}

#[test]
#[ignore = "needs root, iptables and python3 (network namespaces); run with --include-ignored"]
fn rules_iptables_refuses_leave_nothing_installed() {
    require_root(NEEDS);
    let pod = Pod::create("iptbad", 232);
    let before = nat_table(&pod);
    // The owner match refuses this uid: the whole transaction is refused, not half of it.
    let out = weftctl_iptables(&pod, &["--proxy-uid", "4294967295"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert_eq!(nat_table(&pod), before);

    // Bad flags are refused before anything is read or changed.
    let out = weftctl_iptables(&pod, &["--exclude-outbound-ip-ranges", "10.0.0.0/40"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--exclude-outbound-ip-ranges"));
    assert_eq!(nat_table(&pod), before);

    // Installed rules survive a refused re-install unchanged.
    assert!(weftctl_iptables(&pod, &[]).status.success());
    let installed = nat_table(&pod);
    assert!(!weftctl_iptables(&pod, &["--proxy-uid", "4294967295"])
        .status
        .success());
    assert_eq!(nat_table(&pod), installed);
}

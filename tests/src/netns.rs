//! Network namespaces as pods: a namespace joined to the root namespace by a veth pair, with a
//! default route through it, so traffic in and out of the "pod" crosses real interfaces and
//! iptables' `nat` table applies as it does in a Kubernetes pod. Needs root; the namespace
//! (and with it the veth pair) is deleted on drop.

use std::process::{Command, Output};

pub struct Pod {
    pub name: String,
    /// The pod's address on the veth pair.
    pub ip: String,
    /// The root namespace's side of the pair: the pod's gateway, where tests run "outside" servers.
    pub gateway: String,
}

/// Panics unless this process can create network namespaces (root and the `ip` tool).
pub fn require_root(what: &str) {
    // /proc/self belongs to the process's effective uid.
    let euid = std::fs::metadata("/proc/self")
        .map_or(u32::MAX, |m| std::os::unix::fs::MetadataExt::uid(&m));
    assert!(
        euid == 0,
        "{what} builds network namespaces and needs root (uid 0); this process runs as uid {euid}"
    );
}

impl Pod {
    /// Creates namespace `weft-<tag>-<pid>` on subnet 10.<net>.<pid % 250>.0/24.
    pub fn create(tag: &str, net: u8) -> Pod {
        let pid = std::process::id();
        let name = format!("weft-{tag}-{pid}");
        let third = pid % 250;
        let ip = format!("10.{net}.{third}.2");
        let gateway = format!("10.{net}.{third}.1");
        let host_if = format!("wh{net}x{}", pid % 100_000);
        let pod_if = format!("wp{net}x{}", pid % 100_000);
        // A leftover from a killed run with the same pid would make `add` fail.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let _ = Command::new("ip").args(["link", "del", &host_if]).output();
        let pod = Pod { name, ip, gateway };
        for args in [
            vec!["netns", "add", &pod.name],
            vec![
                "link", "add", &host_if, "type", "veth", "peer", "name", &pod_if,
            ],
            vec!["link", "set", &pod_if, "netns", &pod.name],
            vec![
                "addr",
                "add",
                &format!("{}/24", pod.gateway),
                "dev",
                &host_if,
            ],
            vec!["link", "set", &host_if, "up"],
        ] {
            run_ok(Command::new("ip").args(&args));
        }
        for args in [
            vec!["link", "set", "lo", "up"],
            vec!["addr", "add", &format!("{}/24", pod.ip), "dev", &pod_if],
            vec!["link", "set", &pod_if, "up"],
            vec!["route", "add", "default", "via", &pod.gateway],
        ] {
            run_ok(pod.command("ip").args(&args));
        }
        pod
    }

    /// A command that runs inside the pod's namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Runs `cmd`, panicking with its output unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

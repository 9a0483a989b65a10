//! Network namespaces as pods, so traffic in and out of a "pod" crosses real interfaces and
//! iptables' `nat` table applies as it does in a Kubernetes pod. Needs root.
//!
//! Two layouts:
//! - [`Pod::create`]: one namespace joined to the root namespace by its own veth pair (a
//!   point-to-point /24), for tests of one pod's rules.
//! - [`PodNetwork`]: a bridge in the root namespace holding the gateway address, with any
//!   number of pods attached by veth pairs ([`PodNetwork::add_pod`]); pods reach each other
//!   directly on one L2 segment, as pods on a node do, and each has its own `/etc/hosts` and
//!   `/etc/resolv.conf` (`/etc/netns/NAME/…`, which `ip netns exec` mounts over `/etc`).
//!
//! Everything is named after the test process's pid, so parallel test binaries do not
//! collide, and removed on drop (also when the test panics): the namespace (which takes its
//! end of the veth pair, and so the pair, with it), the `/etc/netns/NAME` folder, the bridge.
//! A leftover of a killed run with the same name is removed before creating.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};

pub struct Pod {
    pub name: String,
    /// The pod's address on its veth pair.
    pub ip: String,
    /// The root namespace's address the pod routes through: where tests run "outside" servers.
    pub gateway: String,
    /// The root namespace's end of the veth pair.
    host_if: String,
    /// `/etc/netns/NAME`, when the pod has its own hosts and resolv.conf.
    etc_dir: Option<PathBuf>,
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
    /// Creates namespace `weft-<tag>-<pid>` on subnet 10.<net>.<pid % 250>.0/24, joined to the
    /// root namespace by its own veth pair (no bridge).
    pub fn create(tag: &str, net: u8) -> Pod {
        let pid = std::process::id();
        let name = format!("weft-{tag}-{pid}");
        let third = pid % 250;
        let ip = format!("10.{net}.{third}.2");
        let gateway = format!("10.{net}.{third}.1");
        let host_if = format!("wh{net}x{}", pid % 100_000);
        let pod_if = format!("wp{net}x{}", pid % 100_000);
        remove_leftovers(&name, &host_if);
        let pod = Pod {
            name,
            ip,
            gateway,
            host_if,
            etc_dir: None,
        };
        for args in [
            vec!["netns", "add", &pod.name],
            vec![
                "link",
                "add",
                &pod.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &pod_if,
            ],
            vec!["link", "set", &pod_if, "netns", &pod.name],
            vec![
                "addr",
                "add",
                &format!("{}/24", pod.gateway),
                "dev",
                &pod.host_if,
            ],
            vec!["link", "set", &pod.host_if, "up"],
        ] {
            run_ok(Command::new("ip").args(&args));
        }
        pod.configure_inside(&pod_if);
        pod
    }

    /// Inside the namespace: loopback up, the pod's address on `pod_if`, default route via
    /// the gateway.
    fn configure_inside(&self, pod_if: &str) {
        for args in [
            vec!["link", "set", "lo", "up"],
            vec!["addr", "add", &format!("{}/24", self.ip), "dev", pod_if],
            vec!["link", "set", pod_if, "up"],
            vec!["route", "add", "default", "via", &self.gateway],
        ] {
            run_ok(self.command("ip").args(&args));
        }
    }

    /// A command that runs inside the pod's namespace (with the pod's `/etc/hosts` and
    /// `/etc/resolv.conf`, when it has them).
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
        // Normally gone with the namespace; a process still holding the namespace keeps it.
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        if let Some(dir) = &self.etc_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A name and address a pod's `/etc/hosts` resolves: `ip` and its `names`, space-separated
/// (`10.96.0.20`, `reviews reviews.default.svc.cluster.local`).
#[derive(Debug, Clone)]
pub struct HostsEntry {
    pub ip: String,
    pub names: String,
}

/// Kubernetes' search path for a pod in namespace `default`. No nameserver line: glibc then
/// asks 127.0.0.1, where nothing answers, so a name missing from hosts fails at once.
const RESOLV_CONF: &str = "search default.svc.cluster.local svc.cluster.local cluster.local\n";

/// Networks made by this process so far, numbering bridges and seeding subnets.
static NETWORKS: AtomicU32 = AtomicU32::new(0);

/// A bridge in the root namespace (`wb<pid>n<k>`) holding the pods' gateway address
/// 10.<net>.<third>.1/24, and the pods attached to it. Dropping it deletes the bridge; drop
/// the pods first (they are separate values so a test can stop one).
pub struct PodNetwork {
    pub bridge: String,
    pub gateway: String,
    /// `10.<net>.<third>`: the pods are .2, .3, …
    prefix: String,
    /// `<pid % 100000>n<k>`: makes interface and namespace names unique.
    tag: String,
    next_host: AtomicU8,
}

impl PodNetwork {
    /// A bridge with its gateway address on a /24 of 10.<net>.0.0/16 that no route in the
    /// root namespace uses yet.
    pub fn create(net: u8) -> PodNetwork {
        let pid = std::process::id();
        let k = NETWORKS.fetch_add(1, Ordering::Relaxed);
        let bridge = format!("wb{pid}n{k}");
        let tag = format!("{}n{k}", pid % 100_000);
        let _ = Command::new("ip").args(["link", "del", &bridge]).output();
        let third = (0..250)
            .map(|i| (pid + k * 53 + i) % 250)
            .find(|t| !subnet_in_use(&format!("10.{net}.{t}.0/24")))
            .unwrap_or_else(|| panic!("every 10.{net}.x.0/24 is routed already"));
        let prefix = format!("10.{net}.{third}");
        let network = PodNetwork {
            gateway: format!("{prefix}.1"),
            bridge,
            prefix,
            tag,
            next_host: AtomicU8::new(2),
        };
        for args in [
            vec!["link", "add", &network.bridge, "type", "bridge"],
            vec![
                "addr",
                "add",
                &format!("{}/24", network.gateway),
                "dev",
                &network.bridge,
            ],
            vec!["link", "set", &network.bridge, "up"],
        ] {
            run_ok(Command::new("ip").args(&args));
        }
        network
    }

    /// A pod `weft-<tag>-<name>` (the namespace name; `name` is the pod's own name, e.g.
    /// `reviews-v1`) on the bridge at the next free address, resolving its own name and
    /// `hosts`.
    pub fn add_pod(&self, name: &str, hosts: &[HostsEntry]) -> Pod {
        let host = self.next_host.fetch_add(1, Ordering::Relaxed);
        assert!(host < 255, "a pod network holds at most 253 pods");
        let ns = format!("weft-{}-{name}", self.tag);
        let host_if = format!("wv{}p{host}", self.tag);
        // Created in the root namespace under a unique name, renamed eth0 inside the pod.
        let pod_if = format!("wq{}p{host}", self.tag);
        remove_leftovers(&ns, &host_if);
        let etc_dir = PathBuf::from("/etc/netns").join(&ns);
        let _ = std::fs::remove_dir_all(&etc_dir);
        let pod = Pod {
            name: ns,
            ip: format!("{}.{host}", self.prefix),
            gateway: self.gateway.clone(),
            host_if,
            etc_dir: Some(etc_dir.clone()),
        };
        write_etc(&etc_dir, &hosts_file(name, &pod.ip, hosts));
        for args in [
            vec!["netns", "add", &pod.name],
            vec![
                "link",
                "add",
                &pod.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &pod_if,
            ],
            vec!["link", "set", &pod.host_if, "master", &self.bridge],
            vec!["link", "set", &pod.host_if, "up"],
            vec!["link", "set", &pod_if, "netns", &pod.name],
        ] {
            run_ok(Command::new("ip").args(&args));
        }
        run_ok(
            pod.command("ip")
                .args(["link", "set", &pod_if, "name", "eth0"]),
        );
        pod.configure_inside("eth0");
        pod
    }
}

impl Drop for PodNetwork {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}

/// Whether a route in the root namespace covers exactly `cidr` (another network's bridge).
fn subnet_in_use(cidr: &str) -> bool {
    Command::new("ip")
        .args(["-4", "route", "show", cidr])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty())
}

/// Removes a namespace and interface left by a killed run that had the same pid.
fn remove_leftovers(ns: &str, host_if: &str) {
    let _ = Command::new("ip").args(["netns", "del", ns]).output();
    let _ = Command::new("ip").args(["link", "del", host_if]).output();
}

/// The pod's `/etc/hosts`: localhost, its own name, then `hosts`.
fn hosts_file(name: &str, ip: &str, hosts: &[HostsEntry]) -> String {
    let mut text = format!("127.0.0.1 localhost\n::1 localhost ip6-localhost\n{ip} {name}\n");
    for h in hosts {
        text.push_str(&format!("{} {}\n", h.ip, h.names));
    }
    text
}

fn write_etc(dir: &std::path::Path, hosts: &str) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    for (file, text) in [("hosts", hosts), ("resolv.conf", RESOLV_CONF)] {
        let path = dir.join(file);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
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

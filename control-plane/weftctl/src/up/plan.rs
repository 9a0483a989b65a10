//! The `weftctl up` plan: a pure function from the folder's WorkloadEntries and the chosen
//! ports to the list of processes to start, with their arguments, ports and readiness checks.
//! Nothing here touches a socket or a process, so every rule is unit tested; `up.rs` runs it.
//!
//! Rules:
//! - A WorkloadEntry is a local demo workload when its address is 127.0.0.1 and it has the
//!   labels `app` and `version`. Its app listens on its `http` port (or its only/first port).
//! - Workload i (by namespace and name) gets a sidecar with outbound port `outbound_base + i` and
//!   admin port `admin_base + i`; the demo app uses that sidecar as its HTTP proxy.
//! - With an app port base, workload i's app listens on `app_base + i` instead of its declared
//!   port, and weftd is told the move (`--local-port-map declared=moved,...`), so the folder
//!   stays as the user wrote it and keeps being watched.
//! - One more proxy, "ingress", sits at the ingress port for the user's curl.
//! - Every port is distinct; a clash is an error before anything starts.

use super::config::{ServiceEntry, WorkloadEntry};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

pub const LOCAL_ADDRESS: &str = "127.0.0.1";
/// BookInfo's service port, used when no ServiceEntry names the target's port.
const DEFAULT_SERVICE_PORT: u32 = 9080;
/// Sidecar ports are handed out from the bases; this keeps outbound and admin ranges apart.
const MAX_WORKLOADS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub xds: u16,
    pub http: u16,
    pub ingress: u16,
    pub ingress_admin: u16,
    pub sidecar_outbound_base: u16,
    pub sidecar_admin_base: u16,
    /// Workload i's app listens on base + i; None: on the port its WorkloadEntry declares.
    pub app_base: Option<u16>,
}

impl Default for Ports {
    fn default() -> Ports {
        Ports {
            xds: 15010,
            http: 15014,
            ingress: 15001,
            ingress_admin: 15000,
            sidecar_outbound_base: 15100,
            sidecar_admin_base: 15200,
            app_base: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    Weftd,
    WeftProxy,
    /// weft-demo-app, one BookInfo-style service.
    DemoApp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    ControlPlane,
    App,
    Sidecar,
    Ingress,
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Role::ControlPlane => "control plane",
            Role::App => "demo app",
            Role::Sidecar => "sidecar",
            Role::Ingress => "ingress proxy",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// Unique; also the log file's name.
    pub name: String,
    pub role: Role,
    pub program: Program,
    pub args: Vec<String>,
    /// What listens where, for the table and the port-clash check.
    pub listens: Vec<(&'static str, SocketAddr)>,
    /// An HTTP URL that answers 200 once the process is ready.
    pub ready_url: String,
}

/// The request that shows the mesh working, and the line the user can paste.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    pub proxy: SocketAddr,
}

impl Target {
    pub fn curl_line(&self) -> String {
        format!("curl -x http://{} {}", self.proxy, self.url)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// weftd first; it must be ready before any proxy connects.
    pub control_plane: Process,
    /// Apps, sidecars and the ingress proxy, started together once weftd is ready.
    pub mesh: Vec<Process>,
    /// Entries that are not local demo workloads, and why.
    pub skipped: Vec<String>,
    pub target: Target,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("no local demo workloads: a WorkloadEntry needs `address: 127.0.0.1` and the labels `app` and `version`{0}")]
    NoWorkloads(String),
    #[error("WorkloadEntry {0} has no ports: add `ports: {{http: <port its app listens on>}}`")]
    NoPort(String),
    #[error("WorkloadEntry {workload}: port {port} is not a TCP port")]
    BadPort { workload: String, port: u32 },
    #[error("port {port} is used by both {first} and {second}; change one (see `weftctl up --help` for the mesh's ports)")]
    PortClash {
        port: u16,
        first: String,
        second: String,
    },
    #[error("{0} local workloads: `up` supports at most {MAX_WORKLOADS}")]
    TooManyWorkloads(usize),
    #[error("--app-port-base cannot move {first} and {second}: both declare port {port}, and weftd maps ports, not workloads")]
    SharedDeclaredPort {
        port: u16,
        first: String,
        second: String,
    },
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

fn ready(port: u16, path: &str) -> String {
    format!("http://{}{path}", local(port))
}

/// A workload that passed the rules, with the port its app listens on.
struct Local<'a> {
    entry: &'a WorkloadEntry,
    app: &'a str,
    version: &'a str,
    port: u16,
    /// Unique display name: the entry's name, qualified when not in "default".
    name: String,
}

pub fn plan(
    config_dir: &Path,
    ports: &Ports,
    workloads: &[WorkloadEntry],
    services: &[ServiceEntry],
) -> Result<Plan, PlanError> {
    let mut skipped = Vec::new();
    let mut locals: Vec<Local> = Vec::new();
    for entry in workloads {
        let qualified = format!("{}.{}", entry.name, entry.namespace);
        if entry.address != LOCAL_ADDRESS {
            skipped.push(format!(
                "{qualified}: address {:?} is not {LOCAL_ADDRESS}",
                entry.address
            ));
            continue;
        }
        let (Some(app), Some(version)) = (entry.labels.get("app"), entry.labels.get("version"))
        else {
            skipped.push(format!("{qualified}: needs the labels app and version"));
            continue;
        };
        if locals
            .iter()
            .any(|l| l.entry.name == entry.name && l.entry.namespace == entry.namespace)
        {
            skipped.push(format!("{qualified}: defined twice, the first one is used"));
            continue;
        }
        let port = app_port(entry, &qualified)?;
        let name = if entry.namespace == "default" {
            entry.name.clone()
        } else {
            qualified
        };
        locals.push(Local {
            entry,
            app,
            version,
            port,
            name,
        });
    }
    if locals.is_empty() {
        let why = if skipped.is_empty() {
            String::new()
        } else {
            format!(" (skipped: {})", skipped.join("; "))
        };
        return Err(PlanError::NoWorkloads(why));
    }
    if locals.len() > MAX_WORKLOADS {
        return Err(PlanError::TooManyWorkloads(locals.len()));
    }
    let moves = move_apps(&mut locals, ports.app_base)?;

    let xds = local(ports.xds).to_string();
    let control_plane = Process {
        name: "weftd".into(),
        role: Role::ControlPlane,
        program: Program::Weftd,
        args: [
            "--config-dir".into(),
            config_dir.display().to_string(),
            "--xds-addr".into(),
            xds.clone(),
            "--http-addr".into(),
            local(ports.http).to_string(),
        ]
        .into_iter()
        .chain(
            (!moves.is_empty())
                .then(|| ["--local-port-map".to_string(), moves.join(",")])
                .into_iter()
                .flatten(),
        )
        .collect(),
        listens: vec![("xds", local(ports.xds)), ("http", local(ports.http))],
        ready_url: ready(ports.http, "/ready"),
    };

    let mut mesh = Vec::new();
    for (i, l) in locals.iter().enumerate() {
        // i < MAX_WORKLOADS (checked above), so these cannot overflow past the base + 99.
        let outbound = ports.sidecar_outbound_base.saturating_add(i as u16);
        let admin = ports.sidecar_admin_base.saturating_add(i as u16);
        let ns = &l.entry.namespace;
        mesh.push(Process {
            name: l.name.clone(),
            role: Role::App,
            program: Program::DemoApp,
            args: vec![
                "--service".into(),
                l.app.into(),
                "--version".into(),
                l.version.into(),
                "--listen".into(),
                local(l.port).to_string(),
                "--proxy".into(),
                local(outbound).to_string(),
                "--namespace".into(),
                ns.clone(),
            ],
            listens: vec![("http", local(l.port))],
            ready_url: ready(l.port, "/health"),
        });
        let labels: Vec<String> = l
            .entry
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        mesh.push(Process {
            name: format!("{}-sidecar", l.name),
            role: Role::Sidecar,
            program: Program::WeftProxy,
            args: proxy_args(
                &xds,
                &format!(
                    "sidecar~{LOCAL_ADDRESS}~{}.{ns}~{ns}.svc.cluster.local",
                    l.entry.name
                ),
                ns,
                &l.entry.name,
                Some(&labels.join(",")),
                outbound,
                admin,
            ),
            listens: vec![("outbound", local(outbound)), ("admin", local(admin))],
            ready_url: ready(admin, "/ready"),
        });
    }

    // The user's requests enter in the namespace of the page they are most likely to open,
    // so short host names in VirtualServices resolve as they would for productpage itself.
    let entry_point = locals
        .iter()
        .find(|l| l.app == "productpage")
        .unwrap_or(&locals[0]);
    let ingress_ns = &entry_point.entry.namespace;
    mesh.push(Process {
        name: "ingress".into(),
        role: Role::Ingress,
        program: Program::WeftProxy,
        args: proxy_args(
            &xds,
            &format!("sidecar~{LOCAL_ADDRESS}~ingress.{ingress_ns}~{ingress_ns}.svc.cluster.local"),
            ingress_ns,
            "ingress",
            None,
            ports.ingress,
            ports.ingress_admin,
        ),
        listens: vec![
            ("outbound", local(ports.ingress)),
            ("admin", local(ports.ingress_admin)),
        ],
        ready_url: ready(ports.ingress_admin, "/ready"),
    });

    check_ports(std::iter::once(&control_plane).chain(mesh.iter()))?;

    let service_port = service_port(services, entry_point.app, ingress_ns);
    let path = if entry_point.app == "productpage" {
        "/productpage"
    } else {
        "/"
    };
    let target = Target {
        url: format!("http://{}:{service_port}{path}", entry_point.app),
        proxy: local(ports.ingress),
    };
    Ok(Plan {
        control_plane,
        mesh,
        skipped,
        target,
    })
}

fn proxy_args(
    xds: &str,
    node_id: &str,
    namespace: &str,
    workload: &str,
    labels: Option<&str>,
    outbound: u16,
    admin: u16,
) -> Vec<String> {
    let mut args: Vec<String> = [
        "--xds-addr",
        xds,
        "--node-id",
        node_id,
        "--namespace",
        namespace,
        "--workload",
        workload,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(labels) = labels {
        args.extend(["--labels".to_string(), labels.to_string()]);
    }
    args.extend([
        "--outbound-addr".to_string(),
        local(outbound).to_string(),
        "--admin-addr".to_string(),
        local(admin).to_string(),
    ]);
    args
}

/// With a base, gives workload i the app port base + i; returns the moves for weftd
/// (`declared=moved`), none when nothing moves.
fn move_apps(locals: &mut [Local], app_base: Option<u16>) -> Result<Vec<String>, PlanError> {
    let Some(base) = app_base else {
        return Ok(Vec::new());
    };
    let mut declared: BTreeMap<u16, String> = BTreeMap::new();
    let mut moves = Vec::new();
    for (i, l) in locals.iter_mut().enumerate() {
        if let Some(first) = declared.insert(l.port, l.name.clone()) {
            return Err(PlanError::SharedDeclaredPort {
                port: l.port,
                first,
                second: l.name.clone(),
            });
        }
        // i < MAX_WORKLOADS; the sum saturates rather than wraps, and a clash is caught later.
        let moved = base.saturating_add(i as u16);
        if moved != l.port {
            moves.push(format!("{}={moved}", l.port));
        }
        l.port = moved;
    }
    Ok(moves)
}

/// The app's port: the one named `http`, else the first by name (WorkloadEntry ports are a map).
fn app_port(entry: &WorkloadEntry, qualified: &str) -> Result<u16, PlanError> {
    let port = entry
        .ports
        .get("http")
        .or_else(|| entry.ports.values().next())
        .ok_or_else(|| PlanError::NoPort(qualified.to_string()))?;
    match u16::try_from(*port) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(PlanError::BadPort {
            workload: qualified.to_string(),
            port: *port,
        }),
    }
}

/// The target's service port from a ServiceEntry whose host is `<app>` or `<app>.<ns>...`.
fn service_port(services: &[ServiceEntry], app: &str, namespace: &str) -> u32 {
    services
        .iter()
        .filter(|s| s.namespace == namespace)
        .find(|s| {
            s.hosts.iter().any(|h| {
                h == app
                    || h.strip_prefix(app)
                        .is_some_and(|rest| rest.starts_with('.'))
            })
        })
        .and_then(|s| s.ports.first().copied())
        .unwrap_or(DEFAULT_SERVICE_PORT)
}

fn check_ports<'a>(processes: impl Iterator<Item = &'a Process>) -> Result<(), PlanError> {
    let mut owners: BTreeMap<u16, String> = BTreeMap::new();
    for p in processes {
        for (what, addr) in &p.listens {
            let owner = format!("{} ({what})", p.name);
            if let Some(first) = owners.insert(addr.port(), owner.clone()) {
                return Err(PlanError::PortClash {
                    port: addr.port(),
                    first,
                    second: owner,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

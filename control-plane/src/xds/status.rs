//! What each connected proxy was sent, ACKed and NACKed, per type URL: the source of
//! `/debug/syncz`, `weftctl proxy-status` and the xDS metrics (see [`pilot`]).

mod pilot;

pub use pilot::{DaemonView, XdsMetrics};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Instant, SystemTime};
use xds_protos::node::NodeIdentity;

#[derive(Debug, Clone, Serialize)]
pub struct ProxyStatus {
    pub node_id: String,
    pub namespace: String,
    pub workload: String,
    /// Where the proxy's admin endpoint listens, from its node metadata: how
    /// `weftctl proxy-config NAME` finds it.
    pub admin_addr: Option<String>,
    /// "sotw" or "delta".
    pub protocol: &'static str,
    pub connected_at: String,
    pub types: BTreeMap<String, TypeStatus>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TypeStatus {
    pub last_sent_version: Option<String>,
    pub last_sent_nonce: Option<String>,
    pub last_acked_version: Option<String>,
    pub last_nack: Option<Nack>,
    pub resources_sent: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Nack {
    pub version: String,
    pub nonce: String,
    pub error_detail: String,
    pub at: String,
}

/// Shared by every stream. The lock is only held to copy small records, never across an await.
#[derive(Debug, Default)]
pub struct StatusRegistry {
    proxies: Mutex<BTreeMap<u64, ProxyStatus>>,
    /// weftd's `/metrics`, which the hooks below record into.
    pub metrics: XdsMetrics,
}

impl StatusRegistry {
    pub fn connect(&self, conn: u64, id: &NodeIdentity, protocol: &'static str) {
        self.metrics.connected();
        let status = ProxyStatus {
            node_id: id.id.clone(),
            namespace: id.namespace.clone(),
            workload: id.workload.clone(),
            admin_addr: id.admin_addr.clone(),
            protocol,
            connected_at: httpdate(SystemTime::now()),
            types: BTreeMap::new(),
        };
        self.lock().insert(conn, status);
    }

    pub fn disconnect(&self, conn: u64) {
        self.lock().remove(&conn);
    }

    pub fn sent(&self, conn: u64, type_url: &str, version: &str, nonce: &str, count: usize) {
        self.metrics.pushed(type_url);
        self.update(conn, type_url, |t| {
            t.last_sent_version = Some(version.to_string());
            t.last_sent_nonce = Some(nonce.to_string());
            t.resources_sent = count;
        });
    }

    pub fn acked(&self, conn: u64, type_url: &str, version: &str) {
        self.metrics.acked();
        self.update(conn, type_url, |t| {
            t.last_acked_version = Some(version.to_string())
        });
    }

    pub fn nacked(&self, conn: u64, type_url: &str, version: &str, nonce: &str, error: &str) {
        self.metrics.rejected(type_url);
        self.update(conn, type_url, |t| {
            t.last_nack = Some(Nack {
                version: version.to_string(),
                nonce: nonce.to_string(),
                error_detail: error.to_string(),
                at: httpdate(SystemTime::now()),
            })
        });
    }

    pub fn converged(&self, since: Instant) {
        self.metrics.converged(since.elapsed().as_secs_f64());
    }

    pub fn snapshot(&self) -> Vec<ProxyStatus> {
        self.lock().values().cloned().collect()
    }

    pub fn connected(&self) -> usize {
        self.lock().len()
    }

    fn update(&self, conn: u64, type_url: &str, f: impl FnOnce(&mut TypeStatus)) {
        if let Some(p) = self.lock().get_mut(&conn) {
            f(p.types.entry(type_url.to_string()).or_default());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, ProxyStatus>> {
        // A panic while holding this lock cannot leave a record half-written in a way that
        // matters for a debug view, so a poisoned lock is still usable.
        self.proxies.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn httpdate(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

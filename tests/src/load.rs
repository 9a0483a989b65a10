//! A steady client load through a proxy, counting successes, failures and who answered.

use crate::client::ProxyConn;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct LoadStats {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub failures: Mutex<Vec<String>>,
    pub served_by: Mutex<BTreeMap<String, u64>>,
}

pub struct Load {
    pub stats: Arc<LoadStats>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `connections` keep-alive clients sending `url` back to back until stopped.
    pub fn start(proxy: SocketAddr, url: &str, connections: usize) -> Load {
        let stats = Arc::new(LoadStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..connections)
            .map(|_| {
                let stats = stats.clone();
                let stop = stop.clone();
                let url = url.to_string();
                tokio::spawn(async move {
                    let mut conn = ProxyConn::new(proxy);
                    while !stop.load(Ordering::Relaxed) {
                        match conn.get(&url, &[]).await {
                            Ok(r) if r.status == 200 => {
                                stats.ok.fetch_add(1, Ordering::Relaxed);
                                if let Ok(mut m) = stats.served_by.lock() {
                                    *m.entry(r.served_by().to_string()).or_default() += 1;
                                }
                            }
                            Ok(r) => stats.fail(format!("status {}: {}", r.status, r.body)),
                            Err(e) => stats.fail(format!("error: {e:#}")),
                        }
                    }
                })
            })
            .collect();
        Load { stats, stop, tasks }
    }

    pub async fn stop(self) -> Arc<LoadStats> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        self.stats
    }
}

impl LoadStats {
    fn fail(&self, why: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut f) = self.failures.lock() {
            if f.len() < 20 {
                f.push(why);
            }
        }
    }

    pub fn summary(&self) -> String {
        format!(
            "ok={} failed={} by={:?} first failures={:?}",
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.served_by.lock().map(|m| m.clone()).unwrap_or_default(),
            self.failures.lock().map(|f| f.clone()).unwrap_or_default(),
        )
    }
}

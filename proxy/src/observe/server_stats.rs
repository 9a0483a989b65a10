//! Envoy's `server.*` stats of the proxy process (`envoy_server_live`, `envoy_server_state`,
//! `envoy_server_uptime`, `envoy_server_memory_physical_size`,
//! `envoy_server_total_connections`), and weft-proxy's own process counters, all set from the
//! state they describe when a scrape reads them.

use crate::envoy_stats::{Page, StatScope};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::time::Instant;

/// Envoy's `server.state` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    Live = 0,
    Draining = 1,
    PreInitializing = 2,
}

/// What the process is doing now, as a scrape reads it.
#[derive(Debug, Clone, Copy)]
pub struct ServerView {
    pub state: ServerState,
    pub downstream_connections: u64,
    pub access_log_lines_dropped: u64,
}

pub struct ServerStats {
    scope: StatScope,
    started: Instant,
    live: Arc<AtomicU64>,
    state: Arc<AtomicU64>,
    uptime: Arc<AtomicU64>,
    memory_physical_size: Arc<AtomicU64>,
    total_connections: Arc<AtomicU64>,
    access_log_lines_dropped: Arc<AtomicU64>,
}

impl Default for ServerStats {
    fn default() -> Self {
        let scope = StatScope::new(Vec::new());
        ServerStats {
            started: Instant::now(),
            live: scope.gauge("envoy_server_live"),
            state: scope.gauge("envoy_server_state"),
            uptime: scope.gauge("envoy_server_uptime"),
            memory_physical_size: scope.gauge("envoy_server_memory_physical_size"),
            total_connections: scope.gauge("envoy_server_total_connections"),
            access_log_lines_dropped: scope.counter("weft_access_log_lines_dropped_total"),
            scope,
        }
    }
}

impl ServerStats {
    /// Sets the gauges from `view` and the process, and adds the series to a scrape.
    pub fn render(&self, view: ServerView, page: &mut Page) {
        let set = |cell: &AtomicU64, v: u64| cell.store(v, Ordering::Relaxed);
        // Envoy: live is 1 unless the server is draining.
        set(&self.live, u64::from(view.state != ServerState::Draining));
        set(&self.state, view.state as u64);
        set(&self.uptime, self.started.elapsed().as_secs());
        if let Some(rss) = resident_bytes() {
            set(&self.memory_physical_size, rss);
        }
        set(&self.total_connections, view.downstream_connections);
        set(
            &self.access_log_lines_dropped,
            view.access_log_lines_dropped,
        );
        page.add(&self.scope);
    }
}

/// The process' resident set size, from `/proc/self/statm` (Linux); `None` elsewhere.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page_size).ok().map(|size| pages * size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(stats: &ServerStats, state: ServerState) -> String {
        let mut page = Page::default();
        let view = ServerView {
            state,
            downstream_connections: 3,
            access_log_lines_dropped: 2,
        };
        stats.render(view, &mut page);
        let mut out = String::new();
        page.render(&mut out);
        out
    }

    #[tokio::test(start_paused = true)]
    async fn live_state_uptime_and_connections_follow_the_process() {
        let stats = ServerStats::default();
        let out = render(&stats, ServerState::PreInitializing);
        for line in [
            "envoy_server_live 1",
            "envoy_server_state 2",
            "envoy_server_uptime 0",
            "envoy_server_total_connections 3",
            "weft_access_log_lines_dropped_total 2",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in\n{out}");
        }
        tokio::time::advance(std::time::Duration::from_secs(61)).await;
        let out = render(&stats, ServerState::Draining);
        for line in [
            "envoy_server_live 0",
            "envoy_server_state 1",
            "envoy_server_uptime 61",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in\n{out}");
        }
        if cfg!(target_os = "linux") {
            let rss = out
                .lines()
                .find_map(|l| l.strip_prefix("envoy_server_memory_physical_size "))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no memory gauge in\n{out}"));
            assert!(rss > 0, "{out}");
        }
    }
}

//! weftd at run time: load the folder, serve ADS, watch for changes, publish new versions.
//!
//! What happens to the configuration is logged under the target [`CONFIG_LOG_TARGET`]: one
//! line per problem (`file:line:col: severity: Kind ns/name: field: message`) and one line per
//! load saying what the proxies now get. `weftctl up` shows exactly those lines (and any
//! warning or error) in its own output, so keep them short and complete.

mod http;
mod port_map;

pub use port_map::{LocalPortMap, PortMapError};

use crate::model::{count_diagnostics, Diagnostic, ResourceKey, Severity};
use crate::source::Store;
use crate::translate::{MeshSnapshot, TranslateOptions};
use crate::xds::{AdsService, ConfigVersion, ResourceGenerator, Resources, StatusRegistry};
use anyhow::Context as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::watch;
use tracing::{error, info, warn};

pub struct DaemonConfig {
    pub config_dir: PathBuf,
    pub xds_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub options: TranslateOptions,
    /// Loopback endpoint ports to move (see [`LocalPortMap`]); empty for none.
    pub local_port_map: LocalPortMap,
}

/// The tracing target of the configuration's log lines (loads, reloads, problems).
pub const CONFIG_LOG_TARGET: &str = "weftd::config";

/// What the HTTP endpoint reports.
#[derive(Default)]
pub struct DaemonState {
    pub ready: AtomicBool,
    pub config_errors: AtomicUsize,
    pub config_warnings: AtomicUsize,
    pub config_version: AtomicU64,
    pub reloads: AtomicU64,
    pub status: Arc<StatusRegistry>,
    pub diagnostics: std::sync::Mutex<Vec<String>>,
}

/// Runs weftd until `shutdown` resolves.
pub async fn run(
    cfg: DaemonConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = Arc::new(DaemonState::default());
    let mut store = Store::new();
    let outcome = store.reload_dir(&cfg.config_dir);
    report(&state, &outcome.diagnostics);
    let version = publish_version(&state, &store);
    let (errors, warnings) = count_diagnostics(&outcome.diagnostics);
    info!(
        target: CONFIG_LOG_TARGET,
        "loaded {}: version {version}, {} resources served; {}",
        cfg.config_dir.display(),
        store.len(),
        problems(errors, warnings)
    );
    if !cfg.local_port_map.is_empty() {
        info!(target: CONFIG_LOG_TARGET, "moving loopback endpoint ports {}", cfg.local_port_map);
    }
    let mesh = build_snapshot(
        cfg.local_port_map.apply(store.config()),
        cfg.options.clone(),
    )
    .await;
    let (config_tx, config_rx) =
        watch::channel(Arc::new(ConfigVersion::new(version, Arc::new(mesh))));

    let xds_listener = tokio::net::TcpListener::bind(cfg.xds_addr)
        .await
        .with_context(|| format!("cannot bind the xDS address {}", cfg.xds_addr))?;
    let http_listener = tokio::net::TcpListener::bind(cfg.http_addr)
        .await
        .with_context(|| format!("cannot bind the HTTP address {}", cfg.http_addr))?;
    info!(xds = %xds_listener.local_addr()?, http = %http_listener.local_addr()?, dir = %cfg.config_dir.display(), "weftd serving");

    let (stop_tx, stop_rx) = watch::channel(false);
    let ads = AdsService::new(config_rx, state.status.clone());
    let mut xds_stop = stop_rx.clone();
    let xds = tokio::spawn(crate::xds::serve(xds_listener, ads, async move {
        let _ = xds_stop.wait_for(|s| *s).await;
    }));
    tokio::spawn(http::serve(http_listener, state.clone()));
    state.ready.store(true, Ordering::Relaxed);

    let mut changes = crate::source::watch_dir(cfg.config_dir.clone());
    let reload = async {
        while changes.recv().await.is_some() {
            let outcome = store.reload_dir(&cfg.config_dir);
            report(&state, &outcome.diagnostics);
            let (errors, warnings) = count_diagnostics(&outcome.diagnostics);
            let kept = if outcome.kept.is_empty() {
                String::new()
            } else {
                format!("; the last good version stays for {}", names(&outcome.kept))
            };
            if outcome.changed {
                let version = publish_version(&state, &store);
                info!(
                    target: CONFIG_LOG_TARGET,
                    "reloaded: version {version} pushed to the proxies; {}{kept}",
                    problems(errors, warnings)
                );
                let mesh = build_snapshot(
                    cfg.local_port_map.apply(store.config()),
                    cfg.options.clone(),
                )
                .await;
                let _ = config_tx.send(Arc::new(ConfigVersion::new(version, Arc::new(mesh))));
            } else {
                info!(
                    target: CONFIG_LOG_TARGET,
                    "reloaded: nothing changed for the proxies; {}{kept}",
                    problems(errors, warnings)
                );
            }
        }
    };
    tokio::select! {
        _ = reload => warn!("the folder watcher stopped"),
        _ = shutdown => info!("shutting down"),
    }
    let _ = stop_tx.send(true);
    let _ = xds.await;
    Ok(())
}

/// Builds the snapshot and translates its node-independent part (clusters, endpoints) on the
/// blocking pool: that is the bulk of a change's CPU, done once for every proxy, and it must
/// not stall the async workers serving the streams.
async fn build_snapshot(
    config: crate::model::ConfigSet,
    options: TranslateOptions,
) -> MeshSnapshot {
    let build = move || {
        let mesh = MeshSnapshot::new(config, options);
        mesh.warm();
        mesh
    };
    match tokio::task::spawn_blocking(build).await {
        Ok(mesh) => mesh,
        // Only a panic in translation (a bug) or runtime shutdown get here.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The ADS server generates each proxy's resources from the translated snapshot: the one
/// place where the two meet, so that translate does not depend on the server's types.
impl ResourceGenerator for MeshSnapshot {
    fn generate(&self, node: &xds_protos::node::NodeIdentity) -> Resources {
        self.generate_shared(node)
    }
}

fn publish_version(state: &DaemonState, store: &Store) -> String {
    let n = state.reloads.fetch_add(1, Ordering::Relaxed) + 1;
    state.status.metrics.reloaded();
    state
        .config_version
        .store(store.version(), Ordering::Relaxed);
    format!("{}-{n}", store.version())
}

fn report(state: &DaemonState, diagnostics: &[Diagnostic]) {
    let mut errors = 0;
    let mut warnings = 0;
    for d in diagnostics {
        match d.severity {
            Severity::Error => {
                errors += 1;
                error!(target: CONFIG_LOG_TARGET, "{d}");
            }
            Severity::Warning => {
                warnings += 1;
                warn!(target: CONFIG_LOG_TARGET, "{d}");
            }
        }
    }
    state.config_errors.store(errors, Ordering::Relaxed);
    state.config_warnings.store(warnings, Ordering::Relaxed);
    if let Ok(mut g) = state.diagnostics.lock() {
        *g = diagnostics.iter().map(|d| d.to_string()).collect();
    }
}

/// "no problems", "2 errors, 1 warning".
fn problems(errors: usize, warnings: usize) -> String {
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    match (errors, warnings) {
        (0, 0) => "no problems".to_string(),
        (e, 0) => plural(e, "error"),
        (0, w) => plural(w, "warning"),
        (e, w) => format!("{}, {}", plural(e, "error"), plural(w, "warning")),
    }
}

fn names(keys: &[ResourceKey]) -> String {
    keys.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::problems;

    #[test]
    fn problems_are_counted_in_words() {
        assert_eq!(problems(0, 0), "no problems");
        assert_eq!(problems(1, 0), "1 error");
        assert_eq!(problems(0, 2), "2 warnings");
        assert_eq!(problems(2, 1), "2 errors, 1 warning");
    }
}

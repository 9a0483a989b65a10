//! weftd at run time: load the folder, serve ADS, watch for changes, publish new versions.

mod http;

use crate::model::Store;
use crate::model::{Diagnostic, Severity};
use crate::translate::{MeshSnapshot, TranslateOptions};
use crate::xds::{AdsService, ConfigVersion, StatusRegistry};
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
}

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
    let mesh = MeshSnapshot::new(store.config().clone(), cfg.options.clone());
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
            if outcome.changed {
                let version = publish_version(&state, &store);
                info!(%version, "configuration changed; pushing");
                let mesh = MeshSnapshot::new(store.config().clone(), cfg.options.clone());
                let _ = config_tx.send(Arc::new(ConfigVersion::new(version, Arc::new(mesh))));
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

fn publish_version(state: &DaemonState, store: &Store) -> String {
    let n = state.reloads.fetch_add(1, Ordering::Relaxed) + 1;
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
                error!("{d}");
            }
            Severity::Warning => {
                warnings += 1;
                warn!("{d}");
            }
        }
    }
    state.config_errors.store(errors, Ordering::Relaxed);
    state.config_warnings.store(warnings, Ordering::Relaxed);
    if let Ok(mut g) = state.diagnostics.lock() {
        *g = diagnostics.iter().map(|d| d.to_string()).collect();
    }
}

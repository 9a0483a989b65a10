//! Watching the configuration folder.
//!
//! Editors save by writing a temporary file and renaming it over the old one, and tools
//! like `kubectl cp` or `git checkout` touch many files at once; so events are debounced:
//! after an event, one signal is sent once no further event has come for a quiet period, or
//! at the latest [`DEBOUNCE_MAX`] after the first event of a burst (istiod's 100 ms and 10 s),
//! so that a folder that never stays quiet still gets its changes pushed.
//! Consumers reload the whole folder on each signal, so which files changed does not
//! matter, and a signal that is still pending absorbs later ones.

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tracing::{debug, warn};

/// How long the folder must be quiet before a change is signalled.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// The longest a change waits for the folder to become quiet.
pub const DEBOUNCE_MAX: Duration = Duration::from_secs(10);

/// How often the folder is scanned when the operating system's watcher is unavailable.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Signals changes under `dir`, debounced by [`DEBOUNCE`]. If the operating system's
/// watcher cannot be set up (no inotify instances left, an unsupported file system), the
/// folder is polled instead, with a warning. Must be called within a Tokio runtime; the
/// watching stops when the receiver is dropped.
pub fn watch_dir(dir: PathBuf) -> mpsc::Receiver<()> {
    watch_dir_with(dir, DEBOUNCE)
}

/// [`watch_dir`] with another quiet period.
pub fn watch_dir_with(dir: PathBuf, quiet: Duration) -> mpsc::Receiver<()> {
    match try_watch_dir(dir.clone(), quiet) {
        Ok(rx) => rx,
        Err(err) => {
            warn!(dir = %dir.display(), error = %err, "cannot watch the configuration folder; polling it every second instead");
            let (raw_tx, raw_rx) = mpsc::unbounded_channel();
            let (tx, rx) = mpsc::channel(1);
            // Taken now, so that changes made right after this call are seen.
            let first = fingerprint(&dir);
            tokio::spawn(poll(dir, first, raw_tx));
            tokio::spawn(debounce(raw_rx, tx, quiet, DEBOUNCE_MAX, None));
            rx
        }
    }
}

/// Like [`watch_dir_with`], but fails instead of falling back to polling.
pub fn try_watch_dir(dir: PathBuf, quiet: Duration) -> notify::Result<mpsc::Receiver<()>> {
    let (raw_tx, raw_rx) = mpsc::unbounded_channel();
    let mut watcher = RecommendedWatcher::new(
        move |event: notify::Result<notify::Event>| {
            let relevant = match &event {
                // Reads change nothing; every other kind (create, modify, rename, remove) may.
                Ok(event) => !matches!(event.kind, EventKind::Access(_)),
                // Events may have been lost: a reload is the safe answer.
                Err(_) => true,
            };
            if relevant {
                let _ = raw_tx.send(());
            }
        },
        notify::Config::default(),
    )?;
    watcher.watch(&dir, RecursiveMode::Recursive)?;
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(debounce(raw_rx, tx, quiet, DEBOUNCE_MAX, Some(watcher)));
    Ok(rx)
}

/// Turns bursts of raw events into single signals. Owns the watcher, so that it lives as
/// long as somebody listens.
async fn debounce(
    mut raw: mpsc::UnboundedReceiver<()>,
    out: mpsc::Sender<()>,
    quiet: Duration,
    max: Duration,
    _watcher: Option<RecommendedWatcher>,
) {
    loop {
        tokio::select! {
            _ = out.closed() => return,
            event = raw.recv() => if event.is_none() { return },
        }
        let latest = tokio::time::Instant::now() + max;
        loop {
            let wait = quiet.min(latest.saturating_duration_since(tokio::time::Instant::now()));
            tokio::select! {
                _ = out.closed() => return,
                event = tokio::time::timeout(wait, raw.recv()) => match event {
                    Ok(Some(())) => continue,
                    Ok(None) | Err(_) => break,
                },
            }
        }
        debug!("configuration folder changed");
        match out.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Closed(())) => return,
        }
    }
}

/// The fallback: compares the list of files with their sizes and modification times.
async fn poll(dir: PathBuf, first: Fingerprint, raw: mpsc::UnboundedSender<()>) {
    let scan = |dir: &PathBuf| {
        let dir = dir.clone();
        // Listing a folder blocks; keep it off the runtime's worker threads.
        async move {
            tokio::task::spawn_blocking(move || fingerprint(&dir))
                .await
                .unwrap_or_default()
        }
    };
    let mut last = first;
    let mut ticks = tokio::time::interval(POLL_INTERVAL);
    loop {
        ticks.tick().await;
        if raw.is_closed() {
            return;
        }
        let now = scan(&dir).await;
        if now != last {
            last = now;
            if raw.send(()).is_err() {
                return;
            }
        }
    }
}

type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn fingerprint(dir: &Path) -> Fingerprint {
    super::yaml_files(dir)
        .unwrap_or_default()
        .into_iter()
        .map(|path| {
            let meta = std::fs::metadata(&path).ok();
            let len = meta.as_ref().map_or(0, |m| m.len());
            let modified = meta.and_then(|m| m.modified().ok());
            (path, len, modified)
        })
        .collect()
}

#[cfg(test)]
mod tests;

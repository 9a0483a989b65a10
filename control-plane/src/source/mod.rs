//! Where configuration comes from. Today: a folder of YAML files, read whole on every
//! change ([`load_dir`], [`Store::reload_dir`]) and watched for changes ([`watch_dir`]).

mod folder;
mod store;
mod watch;

pub use folder::{parse_dir, yaml_files, FolderError};
pub use store::{ApplyOutcome, Store};
pub use watch::{try_watch_dir, watch_dir, watch_dir_with, DEBOUNCE};

use crate::model::{ConfigSet, Diagnostic};
use std::path::Path;

/// Loads every `*.yaml` / `*.yml` file under `dir` (recursively, in path order, skipping
/// hidden files and folders), parses and validates all of it. `dir` may also be one file.
/// (Here rather than in `folder`, which the store reads with: no cycle between the two.)
pub fn load_dir(dir: &Path) -> (ConfigSet, Vec<Diagnostic>) {
    let mut store = Store::new();
    let outcome = store.reload_dir(dir);
    (store.into_config(), outcome.diagnostics)
}

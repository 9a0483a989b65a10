//! Where configuration comes from. Today: a folder of YAML files, read whole on every
//! change ([`load_dir`], [`Store::reload_dir`]) and watched for changes ([`watch_dir`]).

mod folder;
mod store;
mod watch;

pub use folder::{load_dir, parse_dir, yaml_files, FolderError};
pub use store::{ApplyOutcome, Store};
pub use watch::{try_watch_dir, watch_dir, watch_dir_with, DEBOUNCE};

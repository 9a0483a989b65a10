//! `weftctl analyze DIR`: checks a config folder the way weftd would load it and prints every
//! problem. Exit code 1 when there is an error; warnings alone (fields parsed but not acted on
//! yet) are printed and exit 0.

use std::path::Path;
use weft_control_plane::model::{count_diagnostics, Severity};
use weft_control_plane::source::load_dir;

/// Returns the process exit code.
pub fn run(dir: &Path) -> anyhow::Result<i32> {
    anyhow::ensure!(dir.is_dir(), "{}: not a folder", dir.display());
    let (_config, mut diagnostics) = load_dir(dir);
    if diagnostics.is_empty() {
        println!("no problems");
        return Ok(0);
    }
    // Errors first, then warnings; within each, in file order.
    diagnostics.sort_by_key(|d| (d.severity != Severity::Error, d.file.clone(), d.line));
    for d in &diagnostics {
        println!("{d}");
    }
    let (errors, warnings) = count_diagnostics(&diagnostics);
    println!("{errors} error(s), {warnings} warning(s)");
    Ok(if errors > 0 { 1 } else { 0 })
}

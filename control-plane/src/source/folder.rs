//! Reading a folder of YAML files.

use crate::model::{parse_file_detailed, Diagnostic, ParsedFile};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Folders nested deeper than this are not read; it also stops symlink loops.
const MAX_DEPTH: usize = 16;

/// The configuration folder (or a folder in it) cannot be listed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the configuration folder {}: {source}", dir.display())]
pub struct FolderError {
    pub dir: PathBuf,
    #[source]
    pub source: io::Error,
}

impl FolderError {
    pub fn diagnostic(&self) -> Diagnostic {
        Diagnostic::error(
            &self.dir,
            format!("cannot read the configuration folder: {}", self.source),
        )
    }
}

/// Parses every YAML file under `dir`. Fails only when `dir` itself (or a folder in it)
/// cannot be listed; a file that cannot be read is reported in its [`ParsedFile`].
pub fn parse_dir(dir: &Path) -> Result<Vec<ParsedFile>, FolderError> {
    let files = yaml_files(dir).map_err(|source| FolderError {
        dir: dir.to_path_buf(),
        source,
    })?;
    Ok(files.iter().map(|path| parse_path(path)).collect())
}

fn parse_path(path: &Path) -> ParsedFile {
    match fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => parse_file_detailed(path, &text),
            Err(_) => ParsedFile::unreadable(path, "not UTF-8 text"),
        },
        Err(err) => ParsedFile::unreadable(path, format!("cannot read the file: {err}")),
    }
}

/// The YAML files under `dir`, sorted by path.
pub fn yaml_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if fs::metadata(dir)?.is_file() {
        out.push(dir.to_path_buf());
        return Ok(out);
    }
    walk(dir, 0, &mut out)?;
    out.sort();
    Ok(out)
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        // Hidden entries include editors' swap files and the `..data` links of Kubernetes
        // ConfigMap volumes, whose files are also visible under their own names.
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        // Follows symlinks; a dangling one is skipped like a file that is not there.
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if depth < MAX_DEPTH {
                walk(&path, depth + 1, out)?;
            }
        } else if is_yaml(&path) {
            out.push(path);
        }
    }
    Ok(())
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

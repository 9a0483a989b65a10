//! Reading a folder of YAML files.

use crate::model::{parse_file_detailed, Diagnostic, ParsedFile};
use std::collections::HashMap;
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
    parse_dir_cached(dir, &mut ParseCache::default())
}

/// The files parsed by the last read of a folder, by path. A reload parsed every file again,
/// though a change is usually one file: at 1,000 services, 90 ms of a change (measured).
/// Resources are shared, so what the cache holds beyond the store is the files' text.
#[derive(Debug, Default)]
pub struct ParseCache {
    files: HashMap<PathBuf, ParsedFile>,
}

/// [`parse_dir`], parsing again only the files whose text differs from `cache`'s.
pub fn parse_dir_cached(
    dir: &Path,
    cache: &mut ParseCache,
) -> Result<Vec<ParsedFile>, FolderError> {
    let files = yaml_files(dir).map_err(|source| FolderError {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut read = HashMap::with_capacity(files.len());
    let parsed = files
        .into_iter()
        .map(|path| {
            let file = parse_path(&path, cache.files.remove(&path));
            read.insert(path, file.clone());
            file
        })
        .collect();
    // Files no longer in the folder are forgotten.
    cache.files = read;
    Ok(parsed)
}

fn parse_path(path: &Path, before: Option<ParsedFile>) -> ParsedFile {
    match fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => match before {
                Some(file) if file.text == text => file,
                _ => parse_file_detailed(path, &text),
            },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AnyResource;
    use std::sync::Arc;

    fn first_resource(file: &ParsedFile) -> AnyResource {
        file.docs[0].resource.clone().expect("a valid resource")
    }

    fn same_allocation(a: &AnyResource, b: &AnyResource) -> bool {
        match (a, b) {
            (AnyResource::ServiceEntry(a), AnyResource::ServiceEntry(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    #[test]
    fn only_files_whose_text_changed_are_parsed_again() {
        let se = |name: &str| {
            format!(
                "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}}}\nspec:\n  hosts: [{name}.example.com]\n  ports: [{{number: 80, name: http}}]\n  resolution: DNS\n"
            )
        };
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.yaml"), se("a")).expect("write");
        std::fs::write(dir.path().join("b.yaml"), se("b")).expect("write");
        let mut cache = ParseCache::default();
        let first = parse_dir_cached(dir.path(), &mut cache).expect("read");

        std::fs::write(dir.path().join("b.yaml"), se("c")).expect("write");
        let second = parse_dir_cached(dir.path(), &mut cache).expect("read");
        assert!(same_allocation(
            &first_resource(&first[0]),
            &first_resource(&second[0])
        ));
        assert!(!same_allocation(
            &first_resource(&first[1]),
            &first_resource(&second[1])
        ));
        assert_eq!(first_resource(&second[1]).meta().name, "c");

        // A file gone from the folder is forgotten.
        std::fs::remove_file(dir.path().join("a.yaml")).expect("rm");
        let third = parse_dir_cached(dir.path(), &mut cache).expect("read");
        assert_eq!(third.len(), 1);
        assert_eq!(cache.files.len(), 1);
    }
}

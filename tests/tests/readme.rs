//! The README tells the truth: its routing block copies files that exist and that weftd
//! accepts, each change waits for the reload, the blocks `.ci/run` reads are there, and its
//! links resolve inside the repository.

use std::path::{Path, PathBuf};
use std::process::Command;
use weft_e2e::procs::bin;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).expect("read README.md")
}

/// The fenced block right after the line `<!-- marker -->`, as `.ci/run` finds it.
fn block_after(text: &str, marker: &str) -> Vec<String> {
    let comment = format!("<!-- {marker} -->");
    let mut lines = text.lines().skip_while(|l| l.trim() != comment).skip(1);
    let fence = lines.next().unwrap_or_default();
    assert!(
        fence.trim_start().starts_with("```"),
        "README.md: `{comment}` must be followed by a fenced block, found {fence:?}"
    );
    lines
        .take_while(|l| !l.trim_start().starts_with("```"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_routing_block_copies_valid_files_and_waits_for_each_change() {
    let block = block_after(&readme(), "test:routing");
    let mut copies = 0;
    for (i, line) in block.iter().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if !matches!(words.first(), Some(&"cp") | Some(&"rm")) {
            continue;
        }
        assert_eq!(
            block.get(i + 1).map(|l| l.trim()),
            Some("sleep 1"),
            "README.md routing block: `{line}` must be followed by `sleep 1` (a change applies \
             within about a second)"
        );
        if words[0] != "cp" {
            continue;
        }
        let (source, target) = (words[1], words[2]);
        assert!(
            target.starts_with("examples/bookinfo/"),
            "README.md routing block copies into the running example: {line}"
        );
        assert!(
            root().join(source).is_file(),
            "README.md routing block: {source} does not exist"
        );
        // The example with this file added, as weftd would see it after the `cp`.
        let folder = tempfile::tempdir().expect("temp dir");
        for entry in std::fs::read_dir(root().join("examples/bookinfo")).expect("read example") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "yaml") {
                std::fs::copy(&path, folder.path().join(path.file_name().expect("name")))
                    .expect("copy");
            }
        }
        let name = Path::new(target).file_name().expect("target file name");
        std::fs::copy(root().join(source), folder.path().join(name)).expect("copy");
        let out = Command::new(bin("weftctl"))
            .arg("analyze")
            .arg(folder.path())
            .output()
            .expect("run weftctl analyze");
        assert!(
            out.status.success(),
            "`weftctl analyze` of examples/bookinfo with {source} fails:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        copies += 1;
    }
    assert!(copies >= 3, "README.md routing block copies {copies} files");
}

#[test]
fn the_blocks_ci_runs_are_marked() {
    let text = readme();
    let try_it = block_after(&text, "ci:try-it").join("\n");
    assert!(
        try_it.contains("weftctl up examples/bookinfo"),
        "README.md try-it block: {try_it}"
    );
    let test = block_after(&text, "ci:test").join("\n");
    assert!(
        test.contains("cargo test") && test.contains("--include-ignored"),
        "README.md test block: {test}"
    );
}

#[test]
fn links_resolve_inside_the_repository() {
    let documents = [
        "README.md",
        "docs/architecture.md",
        "examples/bookinfo/README.md",
        "examples/routing/README.md",
    ];
    let mut broken = Vec::new();
    for doc in documents {
        let path = root().join(doc);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {doc}: {e}"));
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            let file = target.split('#').next().unwrap_or_default();
            let resolved = path.parent().expect("parent").join(file);
            let inside = resolved
                .canonicalize()
                .is_ok_and(|p| p.starts_with(root().canonicalize().expect("root")));
            if !inside {
                broken.push(format!("{doc}: ({target})"));
            }
        }
    }
    assert!(broken.is_empty(), "links that do not resolve: {broken:?}");
}

/// The `target` of every markdown link `[text](target)`.
fn link_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    out
}

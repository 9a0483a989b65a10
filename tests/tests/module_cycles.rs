//! No module cycles in weft-proxy or weftd: a module that needs another's types must not be
//! needed by it in turn (the request path, the config compiler and the upstream side stay
//! layered; so do weftd's model, sources, registry, translation and xDS server).
//!
//! The graph is read from the sources: every `crate::…`, `super::…` and `self::…` path in a
//! module's non-test code is an edge to the deepest module it names. Cycles are looked for
//! between files and between the top-level modules (`http`, `router`, `upstream`, …).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Module path (`http::forward`) -> source text without comments and test modules.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path: PathBuf = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path
                .strip_prefix(src)
                .expect("under src")
                .with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.iter().any(|p| p == "tests" || p == "bin") {
                continue;
            }
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                parts.pop();
            }
            let text = std::fs::read_to_string(&path).expect("read file");
            out.insert(parts.join("::"), strip(&text));
        }
    }
    out
}

/// Drops `//` comments and test code: an inline `#[cfg(test)] mod tests { … }` is cut with
/// everything after it (test modules sit at the end of a file by convention here); a
/// `#[cfg(test)] mod tests;` declaration is just skipped (its file is skipped by name).
fn strip(text: &str) -> String {
    let mut code = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        code.push_str(&rest[..at]);
        let after = rest[at + "#[cfg(test)]".len()..].trim_start();
        let line_end = after.find('\n').unwrap_or(after.len());
        let line = &after[..line_end];
        if line.starts_with("mod ") && line.trim_end().ends_with(';') {
            rest = &after[line_end..];
        } else {
            rest = "";
        }
    }
    code.push_str(rest);
    code.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module a path like `super::plan::Timeouts` names, seen from `from`.
fn resolve(from: &str, path: &[&str], known: &BTreeMap<String, String>) -> Option<String> {
    let mut base: Vec<&str> = if from.is_empty() {
        vec![]
    } else {
        from.split("::").collect()
    };
    let mut rest = path;
    match *rest.first()? {
        "crate" => base.clear(),
        "self" => {}
        "super" => {
            while rest.first() == Some(&"super") {
                base.pop();
                rest = &rest[1..];
            }
            return longest(&base, rest, known);
        }
        _ => return None,
    }
    longest(&base, &rest[1..], known)
}

fn longest(base: &[&str], rest: &[&str], known: &BTreeMap<String, String>) -> Option<String> {
    (0..=rest.len()).rev().find_map(|n| {
        let candidate: Vec<&str> = base.iter().chain(&rest[..n]).copied().collect();
        let name = candidate.join("::");
        known.contains_key(&name).then_some(name)
    })
}

fn graph(mods: &BTreeMap<String, String>) -> Graph {
    let mut g = Graph::new();
    for (name, code) in mods {
        let edges = g.entry(name.clone()).or_default();
        for token in code.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')) {
            let parts: Vec<&str> = token.split("::").filter(|p| !p.is_empty()).collect();
            if !matches!(parts.first(), Some(&("crate" | "super" | "self"))) || parts.len() < 2 {
                continue;
            }
            if let Some(target) = resolve(name, &parts, mods) {
                let nested = target.starts_with(&format!("{name}::"))
                    || name.starts_with(&format!("{target}::"));
                if target != *name && !nested {
                    edges.insert(target);
                }
            }
        }
    }
    g
}

/// Strongly connected components with more than one member.
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct Tarjan<'g> {
        g: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<Vec<String>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, v: &'g str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.g.get(v).into_iter().flatten() {
                if !self.index.contains_key(w.as_str()) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w.as_str()]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w.as_str()) {
                    let low = self.low[v].min(self.index[w.as_str()]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.out.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out
}

fn top_level(g: &Graph) -> Graph {
    let mut top = Graph::new();
    for (from, targets) in g {
        let a = from.split("::").next().unwrap_or("").to_string();
        for to in targets {
            let b = to.split("::").next().unwrap_or("").to_string();
            if a != b {
                top.entry(a.clone()).or_default().insert(b);
            }
        }
    }
    top
}

fn assert_no_cycles(crate_dir: &str, probe: (&str, &str)) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(crate_dir)
        .join("src");
    let mods = modules(&src);
    let g = graph(&mods);
    // The reading works: a module known to depend on another is seen to.
    assert!(
        g.get(probe.0).is_some_and(|e| e.contains(probe.1)),
        "{crate_dir}: {} should depend on {}: {:?}",
        probe.0,
        probe.1,
        g.get(probe.0)
    );
    assert_eq!(
        cycles(&g),
        Vec::<Vec<String>>::new(),
        "{crate_dir}: file-level cycles"
    );
    assert_eq!(
        cycles(&top_level(&g)),
        Vec::<Vec<String>>::new(),
        "{crate_dir}: cycles between top-level modules"
    );
}

#[test]
fn weft_proxy_has_no_module_cycles() {
    assert_no_cycles("proxy", ("http::forward", "upstream"));
}

#[test]
fn weftd_has_no_module_cycles() {
    assert_no_cycles("control-plane", ("translate::routes", "model"));
}

#[test]
fn weftctl_has_no_module_cycles() {
    assert_no_cycles("control-plane/weftctl", ("up", "proxy_client"));
}

#[test]
fn test_modules_are_skipped_but_code_after_their_declaration_is_read() {
    let code = strip(
        "#[cfg(test)]\nmod tests;\nuse crate::a::B;\n#[cfg(test)]\nmod more {\n use crate::c;\n}\n",
    );
    assert!(code.contains("crate::a::B"), "{code}");
    assert!(!code.contains("crate::c"), "{code}");
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default().insert("a".into());
    g.entry("d".into()).or_default().insert("a".into());
    let found = cycles(&g);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].len(), 3);
}

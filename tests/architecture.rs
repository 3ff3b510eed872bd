//! The import graph of the crate's top-level modules, read from the sources: every
//! `crate::name` (and `use crate::{a, b}`) in a file under `src/` is an edge from the file's
//! top-level module (`src/train/observe.rs` → `train`) to `name`. The rules:
//!
//! - the graph has no cycle;
//! - `error.rs` imports none of `train`, `data`, `backprop` (errors say what happened; the
//!   command line chooses the exit codes);
//! - nothing outside `src/cli` and `src/main.rs` imports `cli`;
//! - benches and tests import nothing from `gradspec::cli`, except `tests/cli_hostile.rs`, whose
//!   subject is the command line's parser itself (clap's own consistency check and parsing
//!   arbitrary argument lists).
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The source without `//` comments (doc links name modules without importing them).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The node of the graph that a path starting at `rest` names: its top-level module, except that
/// the network, `cnn::net`, is a node of its own. The network sits above the kernels
/// (`src/kernels/`), which sit above the spec's reference layers (the rest of `src/cnn/`), so
/// `cnn::net → kernels → cnn` is a layering, not a cycle; `kernels → cnn::net` would be one.
fn node(rest: &str) -> String {
    let name = ident(rest);
    let after = &rest[name.len()..];
    if name == "cnn" && after.starts_with("::net") && ident(&after["::net".len()..]).is_empty() {
        return "cnn::net".to_string();
    }
    name
}

/// The top-level modules `text` names after `prefix` (`crate::` or `gradspec::`), including
/// every member of a `prefix{a, b::c}` group.
fn references(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let text = code(text);
    for (i, _) in text.match_indices(prefix) {
        // `$crate::` (a macro's own crate) counts; `foo_crate::` does not.
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && !c.is_whitespace() => {
                        start = false;
                        let name = node(&group[j..]);
                        if !name.is_empty() && name != "self" {
                            out.insert(name);
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let name = node(rest);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// `src/a/b.rs` → `a`, `src/a.rs` → `a`; `src/cnn/net.rs` → `cnn::net` (see [`node`]).
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    if rel == Path::new("cnn/net.rs") {
        return "cnn::net".to_string();
    }
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Edges between top-level modules, and which files make each edge.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut g = Graph::new();
    for f in files {
        let from = top_module(src, &f);
        let text = std::fs::read_to_string(&f).unwrap();
        let mut refs = references(&text, "crate::");
        if from == "main" {
            refs.extend(references(&text, "gradspec::"));
        }
        let rel = f.strip_prefix(src).unwrap().display().to_string();
        for to in refs {
            if to != from {
                g.entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_default()
                    .insert(rel.clone());
            }
        }
    }
    g
}

/// A cycle of the graph, as the list of its modules, if there is one.
fn cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut c = path[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for next in g.get(n).into_iter().flat_map(|m| m.keys()) {
            if let Some(c) = visit(next, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(n, g, &mut Vec::new(), &mut done))
}

fn describe(g: &Graph, c: &[String]) -> String {
    c.windows(2)
        .map(|w| {
            let files: Vec<&String> = g[&w[0]][&w[1]].iter().collect();
            format!("{} → {} ({files:?})", w[0], w[1])
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn the_top_level_modules_import_each_other_without_a_cycle() {
    let g = graph(&root().join("src"));
    assert!(g.len() > 5, "the reader found too few modules: {g:?}");
    if let Some(c) = cycle(&g) {
        panic!("import cycle: {}", describe(&g, &c));
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle_it_is_given() {
    let mut g = Graph::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        g.entry(a.into())
            .or_default()
            .entry(b.into())
            .or_default()
            .insert("x.rs".into());
    }
    assert_eq!(cycle(&g).map(|c| c.len()), Some(4));
    g.get_mut("c").unwrap().remove("a");
    assert_eq!(cycle(&g), None);
}

#[test]
fn the_reader_sees_paths_groups_and_macros_but_not_comments() {
    let text = "use crate::{a::X, b, self};\n// crate::c\nlet y = crate::d::f();\n$crate::e::m!();\nmy_crate::f;";
    let want: BTreeSet<String> = ["a", "b", "d", "e"].iter().map(|s| s.to_string()).collect();
    assert_eq!(references(text, "crate::"), want);
    let text = "use crate::cnn::net::Net;\nuse crate::{cnn::network, kernels::conv};";
    let want: BTreeSet<String> = ["cnn::net", "cnn", "kernels"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(references(text, "crate::"), want);
}

#[test]
fn the_error_type_imports_nothing_of_what_it_reports_on() {
    let g = graph(&root().join("src"));
    let imports: BTreeSet<&String> = g.get("error").into_iter().flat_map(|m| m.keys()).collect();
    for forbidden in ["train", "data", "backprop", "cli"] {
        assert!(
            !imports.contains(&forbidden.to_string()),
            "error.rs imports {forbidden}"
        );
    }
}

#[test]
fn only_the_command_line_and_main_import_the_command_line() {
    let g = graph(&root().join("src"));
    for (from, tos) in &g {
        if from != "cli" && from != "main" {
            assert!(
                !tos.contains_key("cli"),
                "{from} imports cli in {:?}",
                tos["cli"]
            );
        }
    }
    assert!(
        g["main"].contains_key("cli"),
        "the reader missed main → cli"
    );
}

#[test]
fn benches_and_tests_import_nothing_from_the_command_line() {
    let mut files = Vec::new();
    rust_files(&root().join("benches"), &mut files);
    rust_files(&root().join("tests"), &mut files);
    let allowed = root().join("tests/cli_hostile.rs");
    let this = root().join("tests/architecture.rs");
    for f in files.into_iter().filter(|f| *f != allowed && *f != this) {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            !references(&text, "gradspec::").contains("cli"),
            "'{}' imports gradspec::cli",
            f.display()
        );
    }
}

/// The spec's layers and the fast paths live apart: only `src/kernels/` may use intrinsics.
mod intrinsics {
    // The house's layering, checked on the source text: the spec's layers and the fast paths live
    // apart. Everything that depends on the CPU is in `src/kernels/`; anywhere else in `src/`,
    // intrinsics (`core::arch`, `std::arch`) and `#[target_feature]` are forbidden, so a reader who
    // follows a spec label into `src/cnn/` sees the maths and nothing else.
    use std::path::{Path, PathBuf};

    /// The words that only `src/kernels/` may write.
    // (`#[target_feature(…)]` and `cfg(target_feature = …)`; the bare word may appear in a string,
    // e.g. the conformance checker's list of well-known cfg names.)
    const CPU_WORDS: [&str; 4] = [
        "core::arch",
        "std::arch",
        "#[target_feature",
        "target_feature =",
    ];

    /// Every `.rs` file under `dir`, recursively, in a fixed order.
    fn rust_files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                out.extend(rust_files(&p));
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
        out
    }

    /// The lines (file:line: text) outside `kernels` under `src` that mention a word of
    /// [`CPU_WORDS`].
    fn offending_lines(src: &Path, kernels: &Path) -> Vec<String> {
        let mut bad = Vec::new();
        for f in rust_files(src) {
            if f.starts_with(kernels) {
                continue;
            }
            let text =
                std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            for (i, line) in text.lines().enumerate() {
                if CPU_WORDS.iter().any(|w| line.contains(w)) {
                    bad.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
                }
            }
        }
        bad
    }

    #[test]
    fn only_src_kernels_uses_intrinsics_or_target_feature() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let (src, kernels) = (root.join("src"), root.join("src/kernels"));
        assert!(
            !rust_files(&kernels).is_empty(),
            "src/kernels/ holds no Rust files: the check below would prove nothing"
        );
        let bad = offending_lines(&src, &kernels);
        assert!(
            bad.is_empty(),
            "CPU-dependent code outside src/kernels/ ({}):\n{}",
            CPU_WORDS.join(", "),
            bad.join("\n")
        );
    }

    /// The check itself can fail: a file outside the kernels' folder that names an intrinsic module
    /// is reported, and the same file inside it is not.
    #[test]
    fn the_check_reports_a_mention_outside_the_kernels() {
        let dir =
            std::env::temp_dir().join(format!("gradspec-architecture-{}", std::process::id()));
        let (src, kernels) = (dir.join("src"), dir.join("src/kernels"));
        std::fs::create_dir_all(&kernels).expect("create the temporary tree");
        std::fs::write(src.join("layer.rs"), "use std::arch::x86_64::*;\n").expect("write");
        std::fs::write(
            kernels.join("fast.rs"),
            "#[target_feature(enable = \"avx2\")]\n",
        )
        .expect("write");
        let bad = offending_lines(&src, &kernels);
        std::fs::remove_dir_all(&dir).expect("remove the temporary tree");
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(
            bad[0].ends_with("layer.rs:1: use std::arch::x86_64::*;"),
            "{bad:?}"
        );
    }
}

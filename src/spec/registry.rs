//! The registry: loads the spec, the library and the tests from a project root, finds the
//! files cargo compiles (the module trees of `src/lib.rs` and of every test target), checks the
//! spec↔code↔test bijection and renders the coverage table.
use super::rust::{ModDecl, mod_decls};
use super::{
    CodeEntry, Problem, Site, TestCitation, code_entries, function_name_for, spec_labels,
    test_citations,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The whole registry: labels from `spec/*.md`, functions from `src/**/*.rs`, citations from
/// `tests/**/*.rs`.
#[derive(Debug, Default)]
pub struct Registry {
    /// Every label defined in the spec, with where it is defined.
    pub equations: Vec<(String, Site)>,
    /// Every function citing a label in the first line of its doc comment.
    pub functions: Vec<CodeEntry>,
    /// Every label cited by a `Verifies` doc line in the tests.
    pub tests: Vec<TestCitation>,
}

/// One row of the coverage table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CoverageRow {
    /// The equation's label.
    pub label: String,
    /// The implementing function, if any.
    pub function: Option<String>,
    /// `spec/cnn.md:123`.
    pub spec: String,
    /// `src/cnn/conv.rs:45`, if there is a function.
    pub code: Option<String>,
    /// The tests citing the label, sorted.
    pub tests: Vec<String>,
}

impl Registry {
    /// Reads `root/spec/**/*.md`, `root/src/**/*.rs` and `root/tests/**/*.rs`. Sites are
    /// relative to `root`. A labelled function in a file that `src/lib.rs` does not reach by
    /// `mod` declarations, and a citation in a file that no test target reaches, are kept but
    /// marked (see [`CodeEntry::not_compiled`], [`TestCitation::not_a_test`]); functions in
    /// modules only `#[cfg(test)]` reaches are unit-test code and are left out.
    pub fn load(root: &Path) -> std::io::Result<Registry> {
        let mut reg = Registry::default();
        let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).to_path_buf();
        for f in files_with_ext(&root.join("spec"), "md")? {
            let text = std::fs::read_to_string(&f)?;
            reg.equations.extend(spec_labels(&rel(&f), &text));
        }
        let lib = ModuleTree::walk(vec![root.join("src/lib.rs")])?;
        for f in files_with_ext(&root.join("src"), "rs")? {
            if lib.test_only.contains(&f) && !lib.compiled.contains(&f) {
                continue;
            }
            let text = std::fs::read_to_string(&f)?;
            let mut entries = code_entries(&rel(&f), &text);
            if !lib.compiled.contains(&f) {
                let why = format!(
                    "{} is outside the module tree (no `mod` path from src/lib.rs reaches it)",
                    rel(&f).display()
                );
                mark(entries.iter_mut().map(|e| &mut e.not_compiled), &why);
            }
            reg.functions.extend(entries);
        }
        let tests_dir = root.join("tests");
        let targets = ModuleTree::walk(test_targets(root)?)?;
        for f in files_with_ext(&tests_dir, "rs")? {
            let text = std::fs::read_to_string(&f)?;
            let stem = test_binary_name(&tests_dir, &f);
            let mut cits = test_citations(&rel(&f), &stem, &text);
            if !targets.compiled.contains(&f) && !targets.test_only.contains(&f) {
                let why = format!(
                    "cargo never compiles {} (not a test target, nor reached from one by `mod`)",
                    rel(&f).display()
                );
                mark(cits.iter_mut().map(|c| &mut c.not_a_test), &why);
            }
            reg.tests.extend(cits);
        }
        Ok(reg)
    }

    /// Every violation, in a stable order.
    pub fn check(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut eqs: BTreeMap<&str, &Site> = BTreeMap::new();
        for (label, site) in &self.equations {
            if let Some(first) = eqs.get(label.as_str()) {
                problems.push(Problem::DuplicateEquation {
                    label: label.clone(),
                    first: (*first).clone(),
                    second: site.clone(),
                });
            } else {
                eqs.insert(label, site);
            }
        }
        let mut fns: BTreeMap<&str, &CodeEntry> = BTreeMap::new();
        for e in &self.functions {
            if let Some(first) = fns.get(e.label.as_str()) {
                problems.push(Problem::DuplicateFunction {
                    label: e.label.clone(),
                    first: first.site.clone(),
                    second: e.site.clone(),
                });
            } else {
                fns.insert(&e.label, e);
            }
            let expected = function_name_for(&e.label);
            if e.function != expected {
                let (label, function, site) = names_of(e);
                problems.push(Problem::Misnamed {
                    label,
                    function,
                    expected,
                    site,
                });
            }
            if e.stub {
                let (label, function, site) = names_of(e);
                problems.push(Problem::StubFunction {
                    label,
                    function,
                    site,
                });
            }
            if let Some(reason) = &e.not_compiled {
                let (label, function, site) = names_of(e);
                problems.push(Problem::FunctionNotCompiled {
                    label,
                    function,
                    reason: reason.clone(),
                    site,
                });
            }
            if !eqs.contains_key(e.label.as_str()) {
                let (label, function, site) = names_of(e);
                problems.push(Problem::FunctionWithoutEquation {
                    label,
                    function,
                    site,
                });
            }
        }
        for (label, site) in &eqs {
            if !fns.contains_key(label) {
                problems.push(Problem::EquationWithoutFunction {
                    label: label.to_string(),
                    site: (*site).clone(),
                });
            }
        }
        for t in &self.tests {
            if let Some(reason) = &t.not_a_test {
                problems.push(Problem::CitationNotOnTest {
                    label: t.label.clone(),
                    item: t.test.clone(),
                    reason: reason.clone(),
                    site: t.site.clone(),
                });
            } else if !eqs.contains_key(t.label.as_str()) {
                problems.push(Problem::TestCitesUnknownEquation {
                    label: t.label.clone(),
                    test: t.test.clone(),
                    site: t.site.clone(),
                });
            }
        }
        let cited = self.tests_by_label();
        for (label, site) in &eqs {
            if !cited.contains_key(label) {
                problems.push(Problem::EquationWithoutTest {
                    label: label.to_string(),
                    site: (*site).clone(),
                });
            }
        }
        problems
    }

    /// Label → the tests (that run) citing it, sorted and without repeats.
    pub fn tests_by_label(&self) -> BTreeMap<&str, BTreeSet<&str>> {
        let mut m: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for t in self.tests.iter().filter(|t| t.not_a_test.is_none()) {
            m.entry(t.label.as_str())
                .or_default()
                .insert(t.test.as_str());
        }
        m
    }

    /// One row per equation, in spec order.
    pub fn coverage(&self) -> Vec<CoverageRow> {
        let fns: BTreeMap<&str, &CodeEntry> = self
            .functions
            .iter()
            .map(|e| (e.label.as_str(), e))
            .collect();
        let tests = self.tests_by_label();
        self.equations
            .iter()
            .map(|(label, site)| {
                let f = fns.get(label.as_str());
                CoverageRow {
                    label: label.clone(),
                    function: f.map(|e| e.function.clone()),
                    spec: site.to_string(),
                    code: f.map(|e| e.site.to_string()),
                    tests: tests
                        .get(label.as_str())
                        .map(|s| s.iter().map(|t| t.to_string()).collect())
                        .unwrap_or_default(),
                }
            })
            .collect()
    }

    /// A markdown coverage table: label, function, spec site, code site, citing tests. With
    /// `lines == false` the spec and code columns name only the file, so the table does not
    /// change when an unrelated edit moves a line (the form kept as a snapshot).
    pub fn coverage_table(&self, lines: bool) -> String {
        let strip = |s: &str| -> String {
            if lines {
                s.to_string()
            } else {
                s.rsplit_once(':').map_or(s, |(f, _)| f).to_string()
            }
        };
        let mut s =
            String::from("| label | function | spec | code | tests |\n|---|---|---|---|---|\n");
        for r in self.coverage() {
            let f = r.function.as_deref().unwrap_or("(missing)");
            let c = r.code.as_deref().map_or("-".into(), strip);
            let t = if r.tests.is_empty() {
                "(none)".to_string()
            } else {
                r.tests
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join("<br>")
            };
            s.push_str(&format!(
                "| `r[{}]` | `{f}` | {} | {c} | {t} |\n",
                r.label,
                strip(&r.spec)
            ));
        }
        s
    }

    /// The coverage as a JSON array, one object per label (see [`CoverageRow`]).
    pub fn coverage_json(&self) -> String {
        serde_json::to_string_pretty(&self.coverage()).expect("plain data serialises")
    }
}

/// `tests/foo.rs` → `foo`; `tests/dir/bar.rs` → `dir::bar`; `tests/dir/mod.rs` → `dir`.
fn test_binary_name(tests_dir: &Path, f: &Path) -> String {
    let rel = f.strip_prefix(tests_dir).unwrap_or(f).with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.len() > 1 && parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// Every file under `dir` (recursively) ending in `.ext`, sorted; none when `dir` does not exist.
pub(super) fn files_with_ext(dir: &Path, ext: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = dir
        .is_dir()
        .then(|| dir.to_path_buf())
        .into_iter()
        .collect();
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let p = entry?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().and_then(|e| e.to_str()) == Some(ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The label, function name and site that every problem about the function `e` names.
fn names_of(e: &CodeEntry) -> (String, String, Site) {
    (e.label.clone(), e.function.clone(), e.site.clone())
}

/// Gives `why` to every slot that has no reason yet.
fn mark<'a>(slots: impl Iterator<Item = &'a mut Option<String>>, why: &str) {
    for slot in slots.filter(|s| s.is_none()) {
        *slot = Some(why.to_string());
    }
}

/// The files a set of crate roots reaches through `mod` declarations.
#[derive(Debug, Default)]
struct ModuleTree {
    /// Reached in every build (the roots included).
    compiled: BTreeSet<PathBuf>,
    /// Reached only through `#[cfg(test)]` modules.
    test_only: BTreeSet<PathBuf>,
}

impl ModuleTree {
    /// Follows the `mod name;` declarations from `roots` (crate root files; a missing root is
    /// skipped). `mod name;` in `dir/{lib,main,mod}.rs` or a crate root is `dir/name.rs` or
    /// `dir/name/mod.rs`; in `dir/file.rs` it is under `dir/file/`; inline `mod a { … }`
    /// blocks add `a/`; `#[path = "p"]` is relative to the declaring file's folder (or, inside
    /// an inline module, to that module's folder).
    fn walk(roots: Vec<PathBuf>) -> std::io::Result<ModuleTree> {
        let mut tree = ModuleTree::default();
        let mut queue: Vec<(PathBuf, bool, bool)> =
            roots.into_iter().map(|r| (r, true, false)).collect();
        while let Some((file, root, test_only)) = queue.pop() {
            let seen = if test_only {
                &mut tree.test_only
            } else {
                &mut tree.compiled
            };
            if !file.is_file() || !seen.insert(file.clone()) {
                continue;
            }
            let text = std::fs::read_to_string(&file)?;
            let parent = file.parent().map(Path::to_path_buf).unwrap_or_default();
            let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let dir = if root || matches!(stem, "mod" | "lib" | "main") {
                parent.clone()
            } else {
                parent.join(stem)
            };
            for ModDecl {
                name,
                inline,
                path,
                test_only: t,
            } in mod_decls(&text)
            {
                let inner: PathBuf = inline.iter().collect();
                let child = match path {
                    Some(p) if inline.is_empty() => parent.join(p),
                    Some(p) => dir.join(inner).join(p),
                    None => {
                        let base = dir.join(inner);
                        let flat = base.join(format!("{name}.rs"));
                        if flat.is_file() {
                            flat
                        } else {
                            base.join(&name).join("mod.rs")
                        }
                    }
                };
                queue.push((child, false, test_only || t));
            }
        }
        Ok(tree)
    }
}

/// The crate roots of the test targets: `tests/*.rs` and `tests/*/main.rs` (unless
/// `autotests = false`), and the `path` of every `[[test]]` in `Cargo.toml`.
fn test_targets(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
    let mut roots = Vec::new();
    let mut section = String::new();
    let mut auto = true;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_string();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        match (section.as_str(), key.trim()) {
            ("[package]", "autotests") => auto = value != "false",
            ("[[test]]", "path") => roots.push(root.join(value)),
            _ => {}
        }
    }
    let tests = root.join("tests");
    if auto && tests.is_dir() {
        for entry in std::fs::read_dir(&tests)? {
            let p = entry?.path();
            if p.is_dir() {
                roots.push(p.join("main.rs"));
            } else if p.extension().is_some_and(|e| e == "rs") {
                roots.push(p);
            }
        }
    }
    roots.sort();
    Ok(roots)
}

#[cfg(test)]
mod test_names {
    use super::{ModuleTree, test_binary_name, test_targets};
    use std::path::Path;

    fn write(root: &Path, files: &[(&str, &str)]) {
        for (f, text) in files {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
    }

    /// `#[path]` outside an inline module is relative to the declaring file's folder; inside
    /// one, to that module's folder (under `a/` for a file `a.rs`). The decoys sit where the
    /// other rule would look.
    #[test]
    fn a_path_attribute_is_relative_to_the_file_or_to_its_inline_module() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(
            r,
            &[
                ("src/lib.rs", "mod a;\n"),
                (
                    "src/a.rs",
                    "#[path = \"p.rs\"]\nmod top;\nmod inl {\n    #[path = \"q.rs\"]\n    mod deep;\n}\n",
                ),
                ("src/p.rs", ""),
                ("src/a/inl/q.rs", ""),
                ("src/a/p.rs", ""),
                ("src/q.rs", ""),
            ],
        );
        let tree = ModuleTree::walk(vec![r.join("src/lib.rs")]).unwrap();
        let got: Vec<_> = tree
            .compiled
            .iter()
            .map(|f| f.strip_prefix(r).unwrap())
            .collect();
        let want = ["src/a/inl/q.rs", "src/a.rs", "src/lib.rs", "src/p.rs"].map(Path::new);
        assert_eq!(got, want);
    }

    /// `autotests = false` leaves only the `[[test]]` targets; otherwise every `tests/*.rs`
    /// and `tests/*/main.rs` is one too.
    #[test]
    fn autotests_false_leaves_only_the_declared_test_targets() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let files = [
            ("tests/a.rs", ""),
            ("tests/b.rs", ""),
            ("tests/d/main.rs", ""),
        ];
        write(r, &files);
        for (manifest, want) in [
            (
                "[package]\nautotests = false\n[[test]]\npath = \"tests/b.rs\"\n",
                &["tests/b.rs"][..],
            ),
            (
                "[package]\nautotests = true\n",
                &["tests/a.rs", "tests/b.rs", "tests/d/main.rs"][..],
            ),
        ] {
            write(r, &[("Cargo.toml", manifest)]);
            let got: Vec<_> = test_targets(r).unwrap();
            let want: Vec<_> = want.iter().map(|f| r.join(f)).collect();
            assert_eq!(got, want, "{manifest}");
        }
    }

    /// The name a citation carries: the file's path under tests/ as a module path, with a
    /// directory's `mod.rs` named after its directory (at any depth, but not at the top).
    #[test]
    fn a_test_file_is_named_by_its_path_under_tests() {
        let t = Path::new("/r/tests");
        for (file, name) in [
            ("/r/tests/foo.rs", "foo"),
            ("/r/tests/mod.rs", "mod"),
            ("/r/tests/dir/bar.rs", "dir::bar"),
            ("/r/tests/dir/mod.rs", "dir"),
            ("/r/tests/a/b/mod.rs", "a::b"),
            ("/r/tests/a/b/c.rs", "a::b::c"),
        ] {
            assert_eq!(test_binary_name(t, Path::new(file)), name, "{file}");
        }
    }
}

//! The spec↔code registry.
//!
//! Every equation in `spec/*.md` sits on a line of its own as a label, `r[ns.topic.name]`
//! (the Rust Reference's convention). Exactly one function implements it, and that function
//! cites the label in the **first line** of its doc comment. The function's name is the label
//! without its namespace, with dots turned into underscores: `r[bp.grad.w5]` ↔ `fn grad_w5`,
//! `r[cnn.conv.forward]` ↔ `fn conv_forward`.
//!
//! The registry is read from the sources themselves (`src/**/*.rs`), so it cannot drift from
//! the code; [`check`] reports orphans on either side, duplicates and misnamed functions.
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where a label was found: file and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One function of the code's registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeEntry {
    pub label: String,
    pub function: String,
    pub site: Site,
}

/// A violation of the spec↔code bijection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A label in the spec that no function cites.
    EquationWithoutFunction { label: String, site: Site },
    /// A function citing a label that no spec defines.
    FunctionWithoutEquation {
        label: String,
        function: String,
        site: Site,
    },
    /// A label defined twice in the spec.
    DuplicateEquation {
        label: String,
        first: Site,
        second: Site,
    },
    /// A label cited by two functions.
    DuplicateFunction {
        label: String,
        first: Site,
        second: Site,
    },
    /// A function whose name does not follow the label.
    Misnamed {
        label: String,
        function: String,
        expected: String,
        site: Site,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::EquationWithoutFunction { label, site } => {
                write!(f, "{site}: equation r[{label}] has no function")
            }
            Problem::FunctionWithoutEquation {
                label,
                function,
                site,
            } => write!(
                f,
                "{site}: fn {function} cites r[{label}], which no spec defines"
            ),
            Problem::DuplicateEquation {
                label,
                first,
                second,
            } => {
                write!(
                    f,
                    "{second}: equation r[{label}] is defined again (first at {first})"
                )
            }
            Problem::DuplicateFunction {
                label,
                first,
                second,
            } => {
                write!(
                    f,
                    "{second}: r[{label}] is cited by a second function (first at {first})"
                )
            }
            Problem::Misnamed {
                label,
                function,
                expected,
                site,
            } => write!(
                f,
                "{site}: fn {function} cites r[{label}] but should be named {expected}"
            ),
        }
    }
}

/// The function name a label requires: namespace dropped, dots to underscores.
pub fn function_name_for(label: &str) -> String {
    let rest = label.split_once('.').map(|(_, r)| r).unwrap_or(label);
    rest.replace(['.', '-'], "_")
}

fn parse_label(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("r[")?.strip_suffix(']')?;
    // A label has a namespace: at least one dot (so prose such as `r[label]` is not one).
    let ok = inner.contains('.')
        && !inner.starts_with('.')
        && inner
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    ok.then_some(inner)
}

/// Labels defined in one markdown text: a line consisting of exactly `r[label]`.
pub fn spec_labels(file: &Path, text: &str) -> Vec<(String, Site)> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        if let Some(l) = parse_label(t) {
            out.push((
                l.to_string(),
                Site {
                    file: file.to_path_buf(),
                    line: i + 1,
                },
            ));
        }
    }
    out
}

/// Functions in one Rust source whose first doc line cites a label.
pub fn code_entries(file: &Path, text: &str) -> Vec<CodeEntry> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim_start();
        let is_doc = t.starts_with("///") && !t.starts_with("////");
        let prev_is_doc = i > 0 && {
            let p = lines[i - 1].trim_start();
            p.starts_with("///") && !p.starts_with("////")
        };
        if is_doc && !prev_is_doc {
            let first = t.trim_start_matches('/').trim();
            if let Some(label) = first_label_in(first) {
                // Find the item the doc block belongs to.
                let mut j = i + 1;
                while j < lines.len() {
                    let u = lines[j].trim_start();
                    if u.starts_with("///") || u.starts_with("#[") || u.is_empty() {
                        j += 1;
                        continue;
                    }
                    break;
                }
                if let Some(name) = lines.get(j).and_then(|l| fn_name(l)) {
                    out.push(CodeEntry {
                        label: label.to_string(),
                        function: name.to_string(),
                        site: Site {
                            file: file.to_path_buf(),
                            line: j + 1,
                        },
                    });
                }
            }
        }
        i += 1;
    }
    out
}

fn first_label_in(s: &str) -> Option<&str> {
    let start = s.find("r[")?;
    let end = s[start..].find(']')? + start;
    parse_label(&s[start..=end])
}

fn fn_name(line: &str) -> Option<&str> {
    let idx = line.find("fn ")?;
    let before = &line[..idx];
    let ok_prefix = before.split_whitespace().all(|w| {
        matches!(
            w,
            "pub" | "const" | "unsafe" | "extern" | "async" | "default"
        ) || w.starts_with("pub(")
    });
    if !ok_prefix {
        return None;
    }
    let rest = &line[idx + 3..];
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// The whole registry: labels from `spec_dir/*.md`, functions from `src_dir/**/*.rs`.
#[derive(Debug, Default)]
pub struct Registry {
    pub equations: Vec<(String, Site)>,
    pub functions: Vec<CodeEntry>,
}

impl Registry {
    /// Reads every `*.md` under `spec_dir` and every `*.rs` under `src_dir`.
    pub fn load(spec_dir: &Path, src_dir: &Path) -> std::io::Result<Registry> {
        let mut reg = Registry::default();
        for f in files_with_ext(spec_dir, "md")? {
            let text = std::fs::read_to_string(&f)?;
            reg.equations.extend(spec_labels(&f, &text));
        }
        for f in files_with_ext(src_dir, "rs")? {
            let text = std::fs::read_to_string(&f)?;
            reg.functions.extend(code_entries(&f, &text));
        }
        Ok(reg)
    }

    /// Every violation of the bijection, in a stable order.
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
                problems.push(Problem::Misnamed {
                    label: e.label.clone(),
                    function: e.function.clone(),
                    expected,
                    site: e.site.clone(),
                });
            }
            if !eqs.contains_key(e.label.as_str()) {
                problems.push(Problem::FunctionWithoutEquation {
                    label: e.label.clone(),
                    function: e.function.clone(),
                    site: e.site.clone(),
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
        problems
    }

    /// A markdown coverage table: label, function, spec site, code site.
    pub fn coverage_table(&self) -> String {
        let fns: BTreeMap<&str, &CodeEntry> = self
            .functions
            .iter()
            .map(|e| (e.label.as_str(), e))
            .collect();
        let mut s = String::from("| label | function | spec | code |\n|---|---|---|---|\n");
        for (label, site) in &self.equations {
            let (f, c) = match fns.get(label.as_str()) {
                Some(e) => (e.function.clone(), e.site.to_string()),
                None => ("(missing)".into(), "-".into()),
            };
            s.push_str(&format!("| `r[{label}]` | `{f}` | {site} | {c} |\n"));
        }
        s
    }
}

fn files_with_ext(dir: &Path, ext: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
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

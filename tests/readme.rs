//! The README's figures cannot drift from the files they come from.
//!
//! The table under `## What you get` in README.md is read row by row (first cell: what the
//! figure is; second: its value; third: where it comes from, with links). The accuracy and
//! epoch figures are recomputed from the `metrics.csv` files their row links to, the label
//! counts from the spec registry (`gradspec::spec::Registry`, as `tests/spec_conformance.rs`
//! loads it), and the default epoch count also from the library's recipe. The other checks keep
//! the README a guide: every headline figure appears once in it, it stays about 300 lines long,
//! every relative link of the README, CHANGELOG.md and docs/ resolves (anchors included), and no
//! tracked file uses the word the project retired for its work periods.
//!
//! No tolerances: accuracies are compared as the two-decimal strings the README prints, which
//! is how `metrics.csv`'s `test_acc` (a count over 10,000 images, in %) is exact to begin with.
use gradspec::spec::Registry;
use gradspec::train::recipe::Recipe;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn readme() -> String {
    read(&root().join("README.md"))
}

/// One row of the headline table.
struct Row {
    value: String,
    source: String,
}

/// The rows of the table under `## What you get`, by their first cell.
fn headline(readme: &str) -> BTreeMap<String, Row> {
    let mut lines = readme.lines().skip_while(|l| l.trim() != "## What you get");
    assert!(
        lines.next().is_some(),
        "README.md has no '## What you get' section"
    );
    let mut rows = BTreeMap::new();
    for line in lines
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
    {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        assert_eq!(cells.len(), 3, "headline row without three cells: {line}");
        let row = Row {
            value: cells[1].to_string(),
            source: cells[2].to_string(),
        };
        assert!(
            rows.insert(cells[0].to_string(), row).is_none(),
            "headline row twice: {}",
            cells[0]
        );
    }
    assert!(!rows.is_empty(), "the '## What you get' table has no rows");
    rows
}

fn row<'a>(rows: &'a BTreeMap<String, Row>, key: &str) -> &'a Row {
    rows.get(key).unwrap_or_else(|| {
        panic!(
            "README.md's headline table has no row '{key}' (rows: {:?})",
            rows.keys().collect::<Vec<_>>()
        )
    })
}

/// The targets of the markdown links `[text](target)` in `text`.
fn link_targets(text: &str) -> Vec<String> {
    text.match_indices("](")
        .filter_map(|(i, _)| {
            let rest = &text[i + 2..];
            rest.find(')').map(|end| rest[..end].to_string())
        })
        .collect()
}

/// `(epoch, test_acc)` of every row of a run's `metrics.csv`, columns found by name.
fn metrics(relative: &str) -> Vec<(u32, f64)> {
    let text = read(&root().join(relative));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header line").split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("{relative}: no column '{name}'"))
    };
    let (epoch, acc) = (col("epoch"), col("test_acc"));
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[epoch].parse().expect("an integer epoch"),
                f[acc].parse().expect("a number test_acc"),
            )
        })
        .collect()
}

/// The `metrics.csv` files a row links to.
fn cited_metrics(r: &Row, key: &str) -> Vec<String> {
    let files: Vec<String> = link_targets(&r.source)
        .into_iter()
        .filter(|t| t.ends_with("/metrics.csv"))
        .collect();
    assert!(!files.is_empty(), "row '{key}' cites no metrics.csv");
    files
}

fn last_acc(file: &str) -> f64 {
    metrics(file).last().expect("at least one epoch").1
}

#[test]
fn accuracy_figures_are_the_last_epochs_of_the_records_they_cite() {
    let rows = headline(&readme());

    let key = "test accuracy after the last epoch (default recipe, seed 1)";
    let r = row(&rows, key);
    let files = cited_metrics(r, key);
    assert_eq!(files.len(), 1, "row '{key}' cites one run");
    assert_eq!(
        r.value,
        format!("{:.2} %", last_acc(&files[0])),
        "row '{key}' against {}",
        files[0]
    );

    let key = "test accuracy after the last epoch, seeds 1 to 5";
    let r = row(&rows, key);
    let files = cited_metrics(r, key);
    assert_eq!(files.len(), 5, "row '{key}' cites the five seeds");
    let accs: Vec<f64> = files.iter().map(|f| last_acc(f)).collect();
    let lo = accs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = accs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(
        r.value,
        format!("{lo:.2}–{hi:.2} %"),
        "row '{key}' against {files:?}"
    );
}

#[test]
fn epoch_figures_are_the_records_and_the_default_recipe() {
    let rows = headline(&readme());

    let key = "epochs (default recipe)";
    let r = row(&rows, key);
    let epochs: usize = r.value.parse().expect("a whole number of epochs");
    assert_eq!(
        epochs,
        Recipe::Onecycle.default_epochs(),
        "row '{key}' against the library's default recipe"
    );
    let seeds = row(&rows, "test accuracy after the last epoch, seeds 1 to 5");
    let cited = cited_metrics(r, key);
    for file in cited.iter().chain(&cited_metrics(seeds, "seeds 1 to 5")) {
        let m = metrics(file);
        assert_eq!(
            m.len(),
            epochs,
            "row '{key}': {file} has {} epochs",
            m.len()
        );
        assert_eq!(
            m.last().map(|e| e.0 as usize),
            Some(epochs),
            "{file}: last epoch"
        );
    }

    let key = "first epoch at ≥ 99.40 % (seed 1)";
    let r = row(&rows, key);
    let files = cited_metrics(r, key);
    assert_eq!(files.len(), 1, "row '{key}' cites one run");
    // test_acc is a count over 10,000 images in %, so 99.40 is read exactly as 99.4.
    let first = metrics(&files[0])
        .iter()
        .find(|(_, acc)| *acc >= 99.40)
        .map(|(e, _)| *e)
        .expect("the run reaches 99.40 %");
    assert_eq!(
        r.value,
        first.to_string(),
        "row '{key}' against {}",
        files[0]
    );
}

#[test]
fn label_counts_are_the_registrys() {
    let rows = headline(&readme());
    let key = "labelled equations";
    let value = &row(&rows, key).value;
    // "73: 45 in spec/backprop.md, 28 in spec/cnn.md"
    let (total, parts) = value
        .split_once(':')
        .unwrap_or_else(|| panic!("row '{key}': expected 'TOTAL: N in FILE, …', got '{value}'"));
    let total: usize = total.trim().parse().expect("a whole number");
    let stated: BTreeMap<String, usize> = parts
        .split(',')
        .map(|p| {
            let (n, file) = p
                .trim()
                .split_once(" in ")
                .unwrap_or_else(|| panic!("row '{key}': expected 'N in FILE', got '{p}'"));
            (
                file.trim().to_string(),
                n.trim().parse().expect("a whole number"),
            )
        })
        .collect();

    let reg = Registry::load(root()).expect("spec/, src/ and tests/ are readable");
    let mut counted: BTreeMap<String, usize> = BTreeMap::new();
    for (_, site) in &reg.equations {
        *counted.entry(site.file_str()).or_default() += 1;
    }
    assert_eq!(stated, counted, "row '{key}': labels per spec file");
    assert_eq!(total, reg.equations.len(), "row '{key}': the total");
}

/// Each headline value's leading figure appears once in the README, and the README stays a
/// guide of about 300 lines.
#[test]
fn readme_states_each_headline_figure_once_and_stays_short() {
    let text = readme();
    let lines = text.lines().count();
    assert!(
        lines <= 320,
        "README.md has {lines} lines; keep it a guide of about 300"
    );

    let tokens: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || "()[]|:;*`".contains(c))
        .map(|t| t.trim_end_matches(['.', ',']))
        .collect();
    for (key, r) in &headline(&text) {
        let figure = r
            .value
            .split(|c: char| c.is_whitespace() || c == ':')
            .next()
            .unwrap_or_default();
        if figure.chars().filter(char::is_ascii_digit).count() < 2 {
            continue; // a single digit (epochs, an epoch number) is too common a token to count
        }
        let n = tokens.iter().filter(|t| **t == figure).count();
        assert_eq!(
            n, 1,
            "'{figure}' (row '{key}') appears {n} times in README.md"
        );
    }
}

/// GitHub's anchor for a heading: lower case, spaces to hyphens, other punctuation dropped.
fn slug(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// The markdown text outside fenced code blocks.
fn prose(text: &str) -> String {
    let mut fenced = false;
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn relative_links_of_the_readme_changelog_and_docs_resolve() {
    let mut files = vec![root().join("README.md"), root().join("CHANGELOG.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);

    let mut broken = Vec::new();
    for file in &files {
        let text = prose(&read(file));
        for target in link_targets(&text) {
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                file.parent().expect("a folder").join(path)
            };
            if !resolved.exists() {
                broken.push(format!("{}: {target} (no such file)", file.display()));
            } else if !anchor.is_empty() {
                let headings = read(&resolved);
                let found = prose(&headings)
                    .lines()
                    .filter(|l| l.starts_with('#'))
                    .any(|l| slug(l.trim_start_matches('#').trim()) == anchor);
                if !found {
                    broken.push(format!("{}: {target} (no such heading)", file.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn slugs_are_githubs() {
    assert_eq!(slug("What you get"), "what-you-get");
    assert_eq!(
        slug("Tests, snapshots, CI and mutation testing"),
        "tests-snapshots-ci-and-mutation-testing"
    );
    assert_eq!(
        slug("Part 1: backpropagation by hand"),
        "part-1-backpropagation-by-hand"
    );
}

/// Every tracked file, from `git ls-files` (or, without git, every file outside `target/` and
/// `.git/`).
fn tracked_files() -> Vec<PathBuf> {
    let out = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root())
        .output();
    match out {
        Ok(o) if o.status.success() => o
            .stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| root().join(String::from_utf8_lossy(p).as_ref()))
            .collect(),
        _ => {
            let mut files = Vec::new();
            let mut stack = vec![root().to_path_buf()];
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(&dir).expect("a readable folder") {
                    let path = entry.expect("a directory entry").path();
                    let name = path.file_name().unwrap_or_default();
                    if path.is_dir() {
                        if name != "target" && name != ".git" {
                            stack.push(path);
                        }
                    } else {
                        files.push(path);
                    }
                }
            }
            files
        }
    }
}

#[test]
fn no_tracked_file_uses_the_retired_word() {
    // Built from pieces, so that this file does not contain it.
    let word = ["ses", "sion"].concat();
    let files = tracked_files();
    assert!(files.len() > 100, "only {} files found", files.len());
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| {
            // A tracked file deleted in the work tree is not there to read.
            std::fs::read(f).is_ok_and(|bytes| {
                bytes
                    .to_ascii_lowercase()
                    .windows(word.len())
                    .any(|w| w == word.as_bytes())
            })
        })
        .map(|f| f.strip_prefix(root()).unwrap_or(f).display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "files using '{word}' (say 'run', 'round' or a date instead): {offenders:?}"
    );
}

//! The spec↔code↔test registry: every `r[label]` line in `spec/*.md` has exactly one function
//! citing it in its first doc line, named after it, whose body is not a stub; every such
//! function has an equation; and every equation is cited by at least one test
//! (`/// Verifies r[label] …` on a `#[test]` or `proptest!` function in `tests/`).
//!
//! The coverage table (label, function, code file, citing tests) is a snapshot,
//! `golden/spec/spec_coverage.snap`, so a test that stops citing a label shows up as a diff.
//! It leaves out line numbers, which move on every unrelated edit.
//!
//! The readers must not be fooled by text that only looks like a label or a citation; each
//! such case has its own test below.
mod proptest_cases;
use gradspec::spec::{CodeEntry, Problem, Registry, code_entries, spec_labels, test_citations};
use proptest::prelude::*;
use proptest_cases::fixed_cases;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn registry() -> Registry {
    Registry::load(root()).expect("spec/, src/ and tests/ are readable")
}

/// Every equation has exactly one function (named after it, not a stub) and vice versa, and
/// every citation in `tests/` is on a test and names an equation.
#[test]
fn every_equation_has_exactly_one_function_and_vice_versa() {
    let problems: Vec<String> = registry()
        .check()
        .iter()
        .filter(|p| !matches!(p, Problem::EquationWithoutTest { .. }))
        .map(|p| p.to_string())
        .collect();
    assert!(
        problems.is_empty(),
        "spec/code/test mismatch:\n{}",
        problems.join("\n")
    );
}

/// Every equation is cited by at least one test.
#[test]
fn every_equation_is_cited_by_a_test() {
    let uncited: Vec<String> = registry()
        .check()
        .iter()
        .filter(|p| matches!(p, Problem::EquationWithoutTest { .. }))
        .map(|p| p.label().to_string())
        .collect();
    assert!(
        uncited.is_empty(),
        "equations no test cites (add `/// Verifies r[…]` to the test that checks them): {uncited:?}"
    );
}

#[test]
fn the_specs_define_45_bp_and_29_cnn_equations() {
    let reg = registry();
    let count = |ns: &str| {
        reg.equations
            .iter()
            .filter(|(l, _)| l.starts_with(ns))
            .count()
    };
    assert_eq!(count("bp."), 45, "spec/backprop.md");
    assert_eq!(count("cnn."), 29, "spec/cnn.md");
    assert_eq!(reg.equations.len(), 45 + 29, "no other namespace");
    assert_eq!(reg.functions.len(), 45 + 29, "one function each");
}

#[test]
fn coverage_table_snapshot() {
    let table = registry().coverage_table(false);
    assert!(
        !table.contains(env!("CARGO_MANIFEST_DIR")),
        "paths are relative"
    );
    insta::with_settings!({
        snapshot_path => "../golden/spec",
        prepend_module_to_snapshot => false,
        description => "gradspec spec-coverage without line numbers",
    }, {
        insta::assert_snapshot!("spec_coverage", table);
    });
}

#[test]
fn coverage_table_and_json_use_paths_relative_to_the_root() {
    let reg = registry();
    let table = reg.coverage_table(true);
    assert!(table.contains("| spec/cnn.md:"), "{table}");
    assert!(table.contains("| src/cnn/conv.rs:"), "{table}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&reg.coverage_json()).unwrap();
    assert_eq!(rows.len(), reg.equations.len());
    let conv = rows
        .iter()
        .find(|r| r["label"] == "cnn.conv.forward")
        .expect("a row for r[cnn.conv.forward]");
    assert_eq!(conv["function"], "conv_forward");
    assert!(conv["spec"].as_str().unwrap().starts_with("spec/cnn.md:"));
    assert!(
        conv["code"]
            .as_str()
            .unwrap()
            .starts_with("src/cnn/conv.rs:")
    );
    assert!(conv["tests"].is_array());
    let w5 = rows.iter().find(|r| r["label"] == "bp.grad.w5").unwrap();
    assert!(
        w5["tests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "backprop_gradcheck::each_weight_gradient_function_matches_d_e_total_dw"),
        "{w5}"
    );
}

#[test]
fn the_cli_prints_json_and_fails_exactly_when_there_are_problems() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gradspec"))
        .args(["spec-coverage", "--json"])
        .output()
        .unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 45 + 29);
    let n = registry().check().len();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if n == 0 {
        assert!(out.status.success(), "{stderr}");
    } else {
        assert_eq!(out.status.code(), Some(2));
        let last = stderr.lines().last().unwrap_or("");
        assert_eq!(last, format!("error: {n} spec/code/test problems"));
    }
}

// ---- The checker itself must be able to fail: synthetic orphans, duplicates, stubs. --------

fn has(p: &[Problem], f: impl Fn(&Problem) -> bool) -> bool {
    p.iter().any(f)
}

#[test]
fn checker_reports_orphans_duplicates_and_misnames() {
    let md = "r[bp.a.one]\nx = 1\n\nr[bp.a.two]\n\nr[bp.a.two]\n```\nr[bp.in.fence]\n```\n";
    let rs = "/// r[bp.a.one] first\nfn a_one() {}\n/// r[bp.a.three]\npub fn a_three() {}\n\
              /// r[bp.a.one]\n#[inline]\npub(crate) fn wrong_name() {}\n";
    let reg = Registry {
        equations: spec_labels(Path::new("s.md"), md),
        functions: code_entries(Path::new("c.rs"), rs),
        tests: Vec::new(),
    };
    let p = reg.check();
    assert!(has(
        &p,
        |x| matches!(x, Problem::EquationWithoutFunction { label, .. } if label == "bp.a.two")
    ));
    assert!(has(
        &p,
        |x| matches!(x, Problem::FunctionWithoutEquation { label, .. } if label == "bp.a.three")
    ));
    assert!(has(
        &p,
        |x| matches!(x, Problem::DuplicateEquation { label, .. } if label == "bp.a.two")
    ));
    assert!(has(
        &p,
        |x| matches!(x, Problem::DuplicateFunction { label, .. } if label == "bp.a.one")
    ));
    assert!(has(
        &p,
        |x| matches!(x, Problem::Misnamed { function, .. } if function == "wrong_name")
    ));
    assert!(has(
        &p,
        |x| matches!(x, Problem::EquationWithoutTest { label, .. } if label == "bp.a.one")
    ));
    assert!(
        !reg.equations.iter().any(|(l, _)| l == "bp.in.fence"),
        "labels in code fences are examples"
    );
}

/// `Problem::label` is the label each problem is about, whatever its kind:
/// `every_equation_is_cited_by_a_test` reports it, and `backprop_conformance` filters by it.
#[test]
fn each_problem_names_its_label() {
    let md = "r[bp.a.one]\nx = 1\n\nr[bp.a.two]\n\nr[bp.a.two]\n";
    let rs = "/// r[bp.a.one]\nfn a_one() {}\n/// r[bp.a.three]\npub fn a_three() {}\n\
              /// r[bp.a.one]\npub fn wrong_name() {}\n";
    let reg = Registry {
        equations: spec_labels(Path::new("s.md"), md),
        functions: code_entries(Path::new("c.rs"), rs),
        tests: Vec::new(),
    };
    let got: Vec<String> = reg
        .check()
        .iter()
        .map(|p| {
            let kind = match p {
                Problem::EquationWithoutFunction { .. } => "no function",
                Problem::FunctionWithoutEquation { .. } => "no equation",
                Problem::DuplicateEquation { .. } => "duplicate equation",
                Problem::DuplicateFunction { .. } => "duplicate function",
                Problem::Misnamed { .. } => "misnamed",
                Problem::EquationWithoutTest { .. } => "no test",
                _ => "other",
            };
            format!("{kind}: {}", p.label())
        })
        .collect();
    for want in [
        "no function: bp.a.two",
        "no equation: bp.a.three",
        "duplicate equation: bp.a.two",
        "duplicate function: bp.a.one",
        "misnamed: bp.a.one",
        "no test: bp.a.one",
        "no test: bp.a.two",
    ] {
        assert!(got.iter().any(|g| g == want), "{want:?} not in {got:?}");
    }
}

#[test]
fn tests_cite_labels_with_a_verifies_line() {
    let rs = r#"
/// Checks the thing.
/// Verifies r[bp.a.one] r[bp.a.two] against central differences.
#[test]
fn plain() { assert_eq!(a_one(), 1); }

proptest! {
    #![proptest_config(fixed_cases(64))]

    /// Verifies r[bp.a.two].
    #[test]
    fn inside_proptest(x in 0..3) { prop_assert!(a_two(x) >= 0); }
}

/// Verifies r[bp.a.one]
#[test] #[should_panic(expected = "x")] fn one_line() { a_one(); }
"#;
    let c = test_citations(Path::new("tests/t.rs"), "t", rs);
    let got: Vec<(&str, &str)> = c
        .iter()
        .map(|c| (c.label.as_str(), c.test.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("bp.a.one", "t::plain"),
            ("bp.a.two", "t::plain"),
            ("bp.a.two", "t::inside_proptest"),
            ("bp.a.one", "t::one_line"),
        ]
    );
    assert!(c.iter().all(|c| c.not_a_test.is_none()), "{c:?}");
    assert_eq!(c[0].site.line, 5, "the fn's line");
}

#[test]
fn prose_without_a_label_and_labels_outside_a_verifies_line_are_not_citations() {
    let rs = "/// Verifies that the mask is keyed.\n/// Uses r[bp.a.one] as an oracle.\n\
              #[test]\nfn prose() {}\n";
    assert!(test_citations(Path::new("t.rs"), "t", rs).is_empty());
}

#[test]
fn a_citation_on_a_helper_or_an_ignored_test_is_a_problem() {
    let rs = "/// Verifies r[bp.a.one]\nfn helper() { a_one(); }\n\
              /// Verifies r[bp.a.one]\n#[test]\n#[ignore]\nfn ignored() {}\n\
              /// Verifies r[bp.a.one]\nconst NOT_A_FN: u8 = 0;\n";
    let reg = Registry {
        equations: spec_labels(Path::new("s.md"), "r[bp.a.one]\n"),
        functions: code_entries(Path::new("c.rs"), "/// r[bp.a.one]\nfn a_one() { 1 }\n"),
        tests: test_citations(Path::new("t.rs"), "t", rs),
    };
    let p = reg.check();
    for item in ["t::helper", "t::ignored", "t::(no function)"] {
        assert!(
            has(
                &p,
                |x| matches!(x, Problem::CitationNotOnTest { item: i, .. } if i == item)
            ),
            "{item}: {p:?}"
        );
    }
    assert!(
        has(&p, |x| matches!(x, Problem::EquationWithoutTest { .. })),
        "citations that are not tests do not count"
    );
    // The helper has a body, so it is rejected for not being a test, not for being empty.
    assert!(rejected_because(rs, "t::helper", "not a #[test] function"));
}

#[test]
fn a_test_citing_an_undefined_label_is_a_problem() {
    let rs = "/// Verifies r[bp.a.one] r[bp.a.typo]\n#[test]\nfn t1() { a_one(); }\n";
    let reg = Registry {
        equations: spec_labels(Path::new("s.md"), "r[bp.a.one]\n"),
        functions: code_entries(Path::new("c.rs"), "/// r[bp.a.one]\nfn a_one() { 1 }\n"),
        tests: test_citations(Path::new("t.rs"), "t", rs),
    };
    let p = reg.check();
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(matches!(&p[0],
        Problem::TestCitesUnknownEquation { label, test, .. } if label == "bp.a.typo" && test == "t::t1"));
}

// ---- Hardened readers: each of these once fooled the parser. ------------------------------

#[test]
fn a_label_in_an_indented_code_block_is_not_a_label() {
    let md = "Text.\n\n    r[bp.in.indented]\n\n\tr[bp.in.tab]\n\n   r[bp.real.three_spaces]\n";
    let labels: Vec<String> = spec_labels(Path::new("s.md"), md)
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    assert_eq!(labels, ["bp.real.three_spaces"]);
}

/// A fence may be indented by up to three spaces; at four it is indented code, not a fence,
/// so the lines after it are read. A tilde fence's info string may hold a backtick; a line of
/// backticks with a backtick after them is inline code, not a fence. Each label keeps its line.
#[test]
fn a_fence_is_indented_by_at_most_three_spaces_and_inline_code_is_no_fence() {
    let md = "   ```\nr[bp.in.three]\n   ```\n\
              \x20   ```\nr[bp.real.after_indented]\n\
              ~~~ `x`\nr[bp.in.tilde_info]\n~~~\n\
              ```a` b```\nr[bp.real.after_inline]\n";
    let labels: Vec<(String, usize)> = spec_labels(Path::new("s.md"), md)
        .into_iter()
        .map(|(l, site)| (l, site.line))
        .collect();
    assert_eq!(
        labels,
        [
            ("bp.real.after_indented".to_string(), 5),
            ("bp.real.after_inline".to_string(), 10)
        ]
    );
}

#[test]
fn a_label_in_a_tilde_or_long_or_info_string_fence_is_not_a_label() {
    let md = "~~~\nr[bp.in.tilde]\n```\nr[bp.in.tilde_still]\n~~~\n\
              ````markdown\n```\nr[bp.in.long]\n```\n````\n\
              ```text\nr[bp.in.info]\n```\n\
              r[bp.real.after]\n\
              ~~~~\nr[bp.in.unclosed]\n~~~\n";
    let labels: Vec<String> = spec_labels(Path::new("s.md"), md)
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    assert_eq!(labels, ["bp.real.after"]);
}

fn functions(rs: &str) -> Vec<String> {
    code_entries(Path::new("c.rs"), rs)
        .into_iter()
        .map(|e| e.function)
        .collect()
}

#[test]
fn a_doc_line_inside_a_block_comment_is_not_read() {
    let rs = "/* an old version:\n/// r[bp.a.one]\nfn a_one() {}\n*/\n\
              /* nested /* deeper */\n/// r[bp.a.two]\nfn a_two() {}\n*/\n\
              /// r[bp.a.three]\nfn a_three() { 3 }\n";
    assert_eq!(functions(rs), ["a_three"]);
}

#[test]
fn a_doc_line_inside_a_string_literal_is_not_read() {
    let rs = "const RAW: &str = r#\"\n/// r[bp.a.one]\nfn a_one() {}\n\"#;\n\
              const PLAIN: &str = \"\n/// r[bp.a.two] \\\" still in the string\nfn a_two() {}\n\";\n\
              const C: char = '\"';\n\
              /// r[bp.a.three]\nfn a_three<'a>(x: &'a str) -> &'a str { x }\n";
    assert_eq!(functions(rs), ["a_three"]);
}

#[test]
fn a_function_in_a_cfg_test_module_is_not_library_code() {
    let rs = "#[cfg(test)]\nmod tests {\n    /// r[bp.a.one]\n    fn a_one() {}\n    \
              fn nested() { if true { } }\n    /// r[bp.a.two]\n    fn a_two() {}\n}\n\
              #[cfg(test)]\n/// r[bp.a.four]\nfn a_four() {}\n\
              /// r[bp.a.three]\nfn a_three() { 3 }\n";
    assert_eq!(functions(rs), ["a_three"]);
    let whole = "#![cfg(test)]\n/// r[bp.a.one]\nfn a_one() {}\n";
    assert!(functions(whole).is_empty());
}

#[test]
fn a_cfg_test_module_file_is_not_library_code() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for d in ["spec", "src/part", "src/part/inner", "tests"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let write = |p: &str, text: &str| std::fs::write(root.join(p), text).unwrap();
    write("spec/s.md", "r[bp.a.one]\n");
    write("src/lib.rs", "pub mod part;\n#[cfg(test)]\nmod checks;\n");
    write("src/checks.rs", "/// r[bp.a.one]\npub fn a_one() {}\n");
    write(
        "src/part.rs",
        "#[cfg(test)]\nmod inner;\n/// r[bp.a.one]\npub fn a_one() { 1 }\n",
    );
    write(
        "src/part/inner/mod.rs",
        "/// r[bp.a.one]\npub fn a_one() {}\n",
    );
    write(
        "tests/t.rs",
        "/// Verifies r[bp.a.one]\n#[test]\nfn t1() { a_one(); }\n",
    );
    let reg = Registry::load(root).unwrap();
    let sites: Vec<String> = reg.functions.iter().map(|e| e.site.to_string()).collect();
    assert_eq!(sites, ["src/part.rs:4"]);
    assert_eq!(reg.tests[0].test, "t::t1");
    assert_eq!(reg.tests[0].site.to_string(), "tests/t.rs:3");
    assert!(reg.check().is_empty(), "{:?}", reg.check());
}

#[test]
fn a_stub_function_is_a_problem() {
    let rs = "/// r[bp.a.one]\nfn a_one() -> f64 {\n    todo!()\n}\n\
              /// r[bp.a.two]\nfn a_two() -> f64 { unimplemented!(\"later, {}\", 1); }\n\
              /// r[bp.a.three]\nfn a_three() -> f64 { unreachable! {} }\n\
              /// r[bp.a.four]\nfn a_four(x: f64) -> f64 { if x > 0.0 { todo!() } else { x } }\n";
    let entries = code_entries(Path::new("c.rs"), rs);
    let stubs: Vec<(&str, bool)> = entries
        .iter()
        .map(|e: &CodeEntry| (e.function.as_str(), e.stub))
        .collect();
    assert_eq!(
        stubs,
        [
            ("a_one", true),
            ("a_two", true),
            ("a_three", true),
            ("a_four", false)
        ]
    );
    let reg = Registry {
        equations: spec_labels(Path::new("s.md"), "r[bp.a.one]\n"),
        functions: entries,
        tests: Vec::new(),
    };
    assert!(has(
        &reg.check(),
        |x| matches!(x, Problem::StubFunction { function, .. } if function == "a_one")
    ));
}

// ---- The registry cannot be fooled: each way a citation or a function could count without ----
// ---- being run or compiled has its own test (issue #28). ------------------------------------

/// The reasons `test_citations` gives for each test in `rs` (in order), `None` for a test that
/// counts.
fn reasons(rs: &str) -> Vec<(String, Option<String>)> {
    test_citations(Path::new("tests/t.rs"), "t", rs)
        .into_iter()
        .map(|c| (c.test, c.not_a_test))
        .collect()
}

fn rejected_because(rs: &str, test: &str, why: &str) -> bool {
    reasons(rs)
        .iter()
        .any(|(t, r)| t == test && r.as_deref().is_some_and(|r| r.contains(why)))
}

#[test]
fn a_test_ignored_in_any_spelling_is_not_a_citation() {
    let rs = "/// Verifies r[bp.a.one]\n#[test]\n#[ignore = \"slow\"]\nfn plain_reason() { a_one(); }\n\
              /// Verifies r[bp.a.one]\n#[test]\n#[cfg_attr(all(), ignore)]\nfn cfg_attr_all() { a_one(); }\n\
              /// Verifies r[bp.a.one]\n#[test]\n#[cfg_attr(\n    unix,\n    ignore = \"x\"\n)]\nfn cfg_attr_unix() { a_one(); }\n\
              /// Verifies r[bp.a.one]\n#[test] #[cfg_attr(test, cfg_attr(all(), ignore))] fn nested() { a_one(); }\n\
              /// Verifies r[bp.a.one]\n#[test]\n#[cfg_attr(any(), ignore)]\nfn never_ignored() { a_one(); }\n";
    for t in [
        "t::plain_reason",
        "t::cfg_attr_all",
        "t::cfg_attr_unix",
        "t::nested",
    ] {
        assert!(
            rejected_because(rs, t, "the test is ignored"),
            "{t}: {:?}",
            reasons(rs)
        );
    }
    let msg = test_citations(Path::new("tests/t.rs"), "t", rs)[1].clone();
    let p = Problem::CitationNotOnTest {
        label: msg.label,
        item: msg.test,
        reason: msg.not_a_test.unwrap(),
        site: msg.site,
    };
    assert_eq!(
        p.to_string(),
        "tests/t.rs:8: t::cfg_attr_all cites r[bp.a.one] but the test is ignored (#[cfg_attr(all(),ignore)])"
    );
    assert!(
        reasons(rs).contains(&("t::never_ignored".into(), None)),
        "cfg_attr(any(), ignore) never ignores: {:?}",
        reasons(rs)
    );
}

#[test]
fn a_test_under_a_cfg_that_is_never_true_is_not_a_citation() {
    let rs = "/// Verifies r[bp.a.one]\n#[cfg(any())]\n#[test]\nfn any_empty() { a_one(); }\n\
              /// Verifies r[bp.a.one]\n#[test]\n#[cfg(FALSE)]\nfn unknown_name() { a_one(); }\n\
              #[cfg(not(all()))]\nmod never {\n    /// Verifies r[bp.a.one]\n    #[test]\n    fn in_a_module() { a_one(); }\n}\n\
              /// Verifies r[bp.a.one]\n#[test]\n#[cfg(all(unix, feature = \"cli\"))]\nfn sometimes() { a_one(); }\n";
    for t in ["t::any_empty", "t::unknown_name", "t::in_a_module"] {
        assert!(
            rejected_because(rs, t, "never compiled"),
            "{t}: {:?}",
            reasons(rs)
        );
    }
    assert!(rejected_because(
        rs,
        "t::in_a_module",
        "(#[cfg(not(all()))] is never true)"
    ));
    assert!(reasons(rs).contains(&("t::sometimes".into(), None)));
    let whole = "#![cfg(any())]\n/// Verifies r[bp.a.one]\n#[test]\nfn t1() { a_one(); }\n";
    assert!(rejected_because(
        whole,
        "t::t1",
        "#![cfg(any())] is never true"
    ));
}

#[test]
fn a_citing_test_with_an_empty_body_is_not_a_citation() {
    let rs = "/// Verifies r[bp.a.one]\n#[test]\nfn plain() {}\n\
              /// Verifies r[bp.a.one]\n#[test]\nfn commented() {\n    // a_one();\n    /* later */\n}\n\
              /// Verifies r[bp.a.one]\n#[test]\nfn real() { assert_eq!(a_one(), 1); }\n";
    assert!(rejected_because(rs, "t::plain", "the test's body is empty"));
    assert!(rejected_because(
        rs,
        "t::commented",
        "the test's body is empty"
    ));
    assert!(reasons(rs).contains(&("t::real".into(), None)));
}

#[test]
fn a_proptest_without_a_case_count_fixed_in_code_is_not_a_citation() {
    let block = |config: &str| {
        format!(
            "fn config() -> ProptestConfig {{ ProptestConfig {{ max_shrink_iters: 9, ..fixed_cases(24) }} }}\n\
             fn loose() -> ProptestConfig {{ ProptestConfig::with_cases(24) }}\n\
             proptest! {{\n    {config}\n    /// Verifies r[bp.a.one]\n    #[test]\n    fn p(x in 0..3u8) {{ prop_assert!(a_one(x)); }}\n}}\n"
        )
    };
    for loose in [
        "",
        "#![proptest_config(ProptestConfig::default())]",
        // `proptest!` applies PROPTEST_CASES over an explicit count too.
        "#![proptest_config(ProptestConfig::with_cases(256))]",
        "#![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]",
        "#![proptest_config(loose())]",
    ] {
        assert!(
            rejected_because(&block(loose), "t::p", "does not fix the case count in code"),
            "{loose}: {:?}",
            reasons(&block(loose))
        );
    }
    for fixed in [
        "#![proptest_config(fixed_cases(256))]",
        "#![proptest_config(config())]",
        "#![proptest_config(ProptestConfig { max_shrink_iters: 9, ..fixed_cases(8) })]",
    ] {
        assert_eq!(reasons(&block(fixed)), [("t::p".into(), None)], "{fixed}");
    }
}

proptest! {
    #![proptest_config(fixed_cases(8))]

    /// Runs only to be run again by the test below, with `PROPTEST_CASES=0` set.
    #[test]
    fn a_property_with_a_fixed_case_count(x in 0..10u8) {
        prop_assert!(x < 10);
    }
}

/// The helper that fixes a case count refuses `PROPTEST_CASES=0` instead of running zero cases:
/// this test binary runs the property above again with the variable set and must see it fail.
#[test]
fn proptest_cases_zero_cannot_empty_a_property() {
    let run = |cases: Option<&str>| {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", "a_property_with_a_fixed_case_count"]);
        cmd.env_remove("PROPTEST_CASES");
        if let Some(c) = cases {
            cmd.env("PROPTEST_CASES", c);
        }
        cmd.output().unwrap()
    };
    let plain = run(None);
    assert!(plain.status.success(), "{plain:?}");
    assert!(String::from_utf8_lossy(&plain.stdout).contains("1 passed"));
    let zero = run(Some("0"));
    let out = String::from_utf8_lossy(&zero.stdout);
    assert!(!zero.status.success(), "PROPTEST_CASES=0 ran: {out}");
    assert!(
        out.contains("fixed in code at 8"),
        "{out}{}",
        String::from_utf8_lossy(&zero.stderr)
    );
    assert!(run(Some("8")).status.success(), "the same count is allowed");
}

#[test]
fn a_labelled_function_whose_body_only_panics_is_a_stub() {
    let rs = "/// r[bp.a.one]\nfn a_one() -> f64 { panic!(\"not yet\") }\n\
              /// r[bp.a.two]\nfn a_two() -> f64 {\n    panic!();\n    todo!()\n}\n\
              /// r[bp.a.three]\nfn a_three(x: f64) -> f64 { assert!(x > 0.0); panic!() }\n";
    let stubs: Vec<(String, bool)> = code_entries(Path::new("c.rs"), rs)
        .into_iter()
        .map(|e| (e.function, e.stub))
        .collect();
    assert_eq!(
        stubs,
        [
            ("a_one".into(), true),
            ("a_two".into(), true),
            ("a_three".into(), false)
        ]
    );
    let reg = Registry {
        equations: spec_labels(Path::new("s.md"), "r[bp.a.one]\n"),
        functions: code_entries(Path::new("c.rs"), rs),
        tests: Vec::new(),
    };
    let msg = reg
        .check()
        .iter()
        .find(|p| matches!(p, Problem::StubFunction { function, .. } if function == "a_one"))
        .map(|p| p.to_string());
    assert_eq!(
        msg.as_deref(),
        Some(
            "c.rs:2: fn a_one cites r[bp.a.one] but its body only panics (panic!/todo!/unimplemented!/unreachable!)"
        )
    );
}

/// A temporary project: `files` as (path, text), written under a fresh folder.
fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (p, text) in files {
        let p = dir.path().join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

#[test]
fn a_labelled_function_outside_the_module_tree_is_a_problem() {
    let dir = project(&[
        (
            "spec/s.md",
            "r[bp.a.one]\n\nr[bp.a.two]\n\nr[bp.a.three]\n\nr[bp.a.four]\n\nr[bp.a.five]\n\nr[bp.a.six]\n",
        ),
        (
            "src/lib.rs",
            "pub mod a;\n#[cfg(any())]\nmod gone;\n#[path = \"elsewhere/b_impl.rs\"]\nmod b;\n\
             #[cfg(feature = \"cli\")]\npub mod feat;\nmod outer {\n    pub mod inner;\n}\n",
        ),
        (
            "src/a.rs",
            "/// r[bp.a.one]\npub fn a_one() -> u8 { 1 }\n\
             /// r[bp.a.six]\n#[cfg(FALSE)]\npub fn a_six() -> u8 { 6 }\n",
        ),
        (
            "src/gone.rs",
            "/// r[bp.a.two]\npub fn a_two() -> u8 { 2 }\n",
        ),
        (
            "src/orphan.rs",
            "/// r[bp.a.two]\npub fn a_two() -> u8 { 2 }\n",
        ),
        (
            "src/elsewhere/b_impl.rs",
            "/// r[bp.a.three]\npub fn a_three() -> u8 { 3 }\n",
        ),
        (
            "src/feat.rs",
            "/// r[bp.a.four]\npub fn a_four() -> u8 { 4 }\n",
        ),
        (
            "src/outer/inner.rs",
            "/// r[bp.a.five]\npub fn a_five() -> u8 { 5 }\n",
        ),
    ]);
    let reg = Registry::load(dir.path()).unwrap();
    let not_compiled: Vec<String> = reg
        .check()
        .iter()
        .filter(|p| matches!(p, Problem::FunctionNotCompiled { .. }))
        .map(|p| p.to_string())
        .collect();
    assert_eq!(
        not_compiled,
        [
            "src/a.rs:5: fn a_six cites r[bp.a.six] but it is never compiled (#[cfg(FALSE)] is never true)",
            "src/gone.rs:2: fn a_two cites r[bp.a.two] but src/gone.rs is outside the module tree (no `mod` path from src/lib.rs reaches it)",
            "src/orphan.rs:2: fn a_two cites r[bp.a.two] but src/orphan.rs is outside the module tree (no `mod` path from src/lib.rs reaches it)",
        ]
    );
}

#[test]
fn a_citation_in_a_file_cargo_never_compiles_is_a_problem() {
    let cite = "/// Verifies r[bp.a.one]\n#[test]\nfn t1() { a_one(); }\n";
    let dir = project(&[
        ("spec/s.md", "r[bp.a.one]\n"),
        (
            "src/lib.rs",
            "/// r[bp.a.one]\npub fn a_one() -> u8 { 1 }\n",
        ),
        (
            "Cargo.toml",
            "[package]\nname = \"x\"\n\n[[test]]\nname = \"extra\"\npath = \"tests/extra/y.rs\"\n",
        ),
        ("tests/top.rs", "mod helpers;\n#[cfg(any())]\nmod gone;\n"),
        ("tests/helpers/mod.rs", cite),
        ("tests/gone.rs", "#![cfg(any())]\n"),
        ("tests/gone/deep.rs", cite),
        ("tests/fixtures/x.rs", cite),
        ("tests/extra/y.rs", cite),
        ("tests/dir/main.rs", cite),
    ]);
    let reg = Registry::load(dir.path()).unwrap();
    let mut got: Vec<(String, Option<String>)> = reg
        .tests
        .iter()
        .map(|c| (c.site.file_str(), c.not_a_test.clone()))
        .collect();
    got.sort();
    let never = |f: &str| {
        Some(format!(
            "cargo never compiles {f} (not a test target, nor reached from one by `mod`)"
        ))
    };
    assert_eq!(
        got,
        [
            ("tests/dir/main.rs".to_string(), None),
            ("tests/extra/y.rs".to_string(), None),
            (
                "tests/fixtures/x.rs".to_string(),
                never("tests/fixtures/x.rs")
            ),
            (
                "tests/gone/deep.rs".to_string(),
                never("tests/gone/deep.rs")
            ),
            ("tests/helpers/mod.rs".to_string(), None),
        ]
    );
    let p = reg.check();
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(
        p[0].to_string(),
        "tests/fixtures/x.rs:3: fixtures::x::t1 cites r[bp.a.one] but cargo never compiles tests/fixtures/x.rs (not a test target, nor reached from one by `mod`)"
    );
}

/// Every `proptest!` block in the tests fixes its case count with the helper, not only the
/// citing ones that the registry checks: a probe citation put into each block must count.
#[test]
fn every_proptest_block_in_tests_fixes_its_case_count() {
    let mut blocks = 0;
    let mut loose = Vec::new();
    for entry in std::fs::read_dir(root().join("tests")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let probe =
            "proptest! {\n/// Verifies r[bp.probe.fixed]\n#[test]\nfn probe(x in 0..3u8) { x; }\n";
        let probed = text.replace("proptest! {", probe);
        for c in test_citations(&p, "probe", &probed) {
            if c.label == "bp.probe.fixed" {
                blocks += 1;
                if let Some(why) = c.not_a_test {
                    loose.push(format!("{}: {why}", c.site));
                }
            }
        }
    }
    assert!(loose.is_empty(), "{loose:#?}");
    assert!(blocks >= 15, "{blocks} proptest blocks found");
}

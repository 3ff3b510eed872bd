//! The spec↔code bijection: every `r[label]` line in `spec/*.md` has exactly one function
//! citing it in its first doc line, named after it, and every such function has an equation.
use gradspec::spec::{Problem, Registry, code_entries, spec_labels};
use std::path::Path;

fn registry() -> Registry {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Registry::load(&root.join("spec"), &root.join("src")).expect("spec/ and src/ are readable")
}

#[test]
fn every_equation_has_exactly_one_function_and_vice_versa() {
    let reg = registry();
    let problems = reg.check();
    let msg: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert!(
        problems.is_empty(),
        "spec/code mismatch:\n{}",
        msg.join("\n")
    );
}

#[test]
fn both_specs_are_covered() {
    let reg = registry();
    for ns in ["bp.", "cnn."] {
        let n = reg
            .equations
            .iter()
            .filter(|(l, _)| l.starts_with(ns))
            .count();
        assert!(n > 0, "no equations with namespace {ns} found in spec/");
    }
}

// The checker itself must be able to fail: feed it synthetic orphans and duplicates.
#[test]
fn checker_reports_orphans_duplicates_and_misnames() {
    let md = "r[bp.a.one]\nx = 1\n\nr[bp.a.two]\n\nr[bp.a.two]\n```\nr[bp.in.fence]\n```\n";
    let rs = "/// r[bp.a.one] first\nfn a_one() {}\n/// r[bp.a.three]\npub fn a_three() {}\n\
              /// r[bp.a.one]\n#[inline]\npub(crate) fn wrong_name() {}\n";
    let reg = Registry {
        equations: spec_labels(Path::new("s.md"), md),
        functions: code_entries(Path::new("c.rs"), rs),
    };
    let p = reg.check();
    let has = |f: &dyn Fn(&Problem) -> bool| p.iter().any(f);
    assert!(has(
        &|x| matches!(x, Problem::EquationWithoutFunction { label, .. } if label == "bp.a.two")
    ));
    assert!(has(
        &|x| matches!(x, Problem::FunctionWithoutEquation { label, .. } if label == "bp.a.three")
    ));
    assert!(has(
        &|x| matches!(x, Problem::DuplicateEquation { label, .. } if label == "bp.a.two")
    ));
    assert!(has(
        &|x| matches!(x, Problem::DuplicateFunction { label, .. } if label == "bp.a.one")
    ));
    assert!(has(
        &|x| matches!(x, Problem::Misnamed { function, .. } if function == "wrong_name")
    ));
    assert!(
        !reg.equations.iter().any(|(l, _)| l == "bp.in.fence"),
        "labels in code fences are examples"
    );
}

//! The spec↔code bijection and test citations restricted to Part 1 (`bp.*`), plus two Part 1
//! conventions:
//! every `bp.*` function lives in `src/backprop/`, and every derivative function shows its
//! equation in its doc comment.
//!
//! `tests/spec_conformance.rs` checks the whole crate; this file isolates Part 1 so that its
//! verdict does not depend on the state of Part 2's spec.
use gradspec::spec::Registry;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn registry() -> Registry {
    Registry::load(root()).expect("spec/, src/ and tests/ are readable")
}

/// Every `bp.*` equation has one function, named after it, and at least one test citing it.
#[test]
fn every_bp_equation_has_exactly_one_function_and_vice_versa() {
    let reg = registry();
    let problems: Vec<String> = reg
        .check()
        .iter()
        .filter(|p| p.label().starts_with("bp."))
        .map(|p| p.to_string())
        .collect();
    assert!(
        problems.is_empty(),
        "Part 1 spec/code mismatch:\n{}",
        problems.join("\n")
    );
    let n = reg
        .equations
        .iter()
        .filter(|(l, _)| l.starts_with("bp."))
        .count();
    assert_eq!(n, 45, "spec/backprop.md defines 45 equations");
}

#[test]
fn bp_functions_live_in_src_backprop_and_derivatives_show_their_equation() {
    let reg = registry();
    for e in reg.functions.iter().filter(|e| e.label.starts_with("bp.")) {
        assert!(
            e.site.file_str().starts_with("src/backprop/"),
            "{}: r[{}] outside src/backprop/",
            e.site,
            e.label
        );
        let is_derivative = ["bp.chain.", "bp.hidden.", "bp.grad."]
            .iter()
            .any(|p| e.label.starts_with(p));
        if is_derivative {
            // The doc block above the function must contain a `/// ∂… = …` line.
            let text = std::fs::read_to_string(root().join(&e.site.file)).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            let mut i = e.site.line - 1;
            let mut found = false;
            while i > 0 {
                i -= 1;
                let l = lines[i].trim_start();
                if !l.starts_with("///") {
                    break;
                }
                found |= l.contains('∂') && l.contains(" = ");
            }
            assert!(found, "{}: {} has no `∂… = …` doc line", e.site, e.function);
        }
    }
}

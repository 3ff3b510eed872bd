//! `cfg` predicates as the registry reads them: which attribute can never be true (so the code
//! under it is never compiled), which one is `cfg(test)`, and which one ignores a test.
//!
//! Attributes arrive with whitespace removed and string contents blanked by the lexer
//! (`#[cfg(feature="   ")]`), so a predicate is judged by its names alone:
//! - `all()` is true and `any()` false; `not`, `all` and `any` combine as in rustc;
//! - the names rustc or Cargo set in some build of this crate (`test`, `unix`, `target_arch`,
//!   `feature`, …, see [`SOMETIMES`]) may be true;
//! - any other name (`FALSE`, `cfg(never)`) is false: nothing sets it, so the item is never
//!   compiled. (A build with `--cfg NAME` in RUSTFLAGS is not a build of this crate's tests.)
//!
//! A predicate it cannot read counts as "may be true", so nothing is rejected by a misreading.

/// Whether a predicate holds: in every build, in none, or in some.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truth {
    Always,
    Never,
    Sometimes,
}

/// Configuration names that are true in some build: rustc's well-known names, plus `feature`
/// (a feature of this crate may be on) and `test`.
const SOMETIMES: &[&str] = &[
    "test",
    "feature",
    "debug_assertions",
    "doc",
    "doctest",
    "miri",
    "overflow_checks",
    "panic",
    "proc_macro",
    "ub_checks",
    "unix",
    "windows",
    "target_abi",
    "target_arch",
    "target_endian",
    "target_env",
    "target_family",
    "target_feature",
    "target_has_atomic",
    "target_os",
    "target_pointer_width",
    "target_vendor",
    "fmt_debug",
    "relocation_model",
    "sanitize",
];

/// Reads one predicate at the start of `s`; returns its truth and the rest of `s`.
fn predicate(s: &str) -> Option<(Truth, &str)> {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    let (name, rest) = s.split_at(end);
    if name.is_empty() {
        return None;
    }
    if let Some(list) = rest.strip_prefix('(') {
        let (args, rest) = arguments(list)?;
        let truth = match name {
            "all" if args.contains(&Truth::Never) => Truth::Never,
            "all" if args.iter().all(|&t| t == Truth::Always) => Truth::Always,
            "any" if args.contains(&Truth::Always) => Truth::Always,
            "any" if args.iter().all(|&t| t == Truth::Never) => Truth::Never,
            "all" | "any" => Truth::Sometimes,
            "not" if args.len() == 1 => match args[0] {
                Truth::Always => Truth::Never,
                Truth::Never => Truth::Always,
                Truth::Sometimes => Truth::Sometimes,
            },
            _ => return None,
        };
        return Some((truth, rest));
    }
    let rest = match rest.strip_prefix("=\"") {
        Some(value) => &value[value.find('"')? + 1..],
        None => rest,
    };
    let truth = if SOMETIMES.contains(&name) {
        Truth::Sometimes
    } else {
        Truth::Never
    };
    Some((truth, rest))
}

/// Reads `a,b,…)` (the opening parenthesis already consumed); returns the truths and the rest
/// after the closing parenthesis.
fn arguments(mut s: &str) -> Option<(Vec<Truth>, &str)> {
    let mut out = Vec::new();
    loop {
        if let Some(rest) = s.strip_prefix(')') {
            return Some((out, rest));
        }
        let (t, rest) = predicate(s)?;
        out.push(t);
        s = rest.strip_prefix(',').unwrap_or(rest);
        if !(rest.starts_with(',') || rest.starts_with(')')) {
            return None;
        }
    }
}

/// The truth of `#[cfg(P)]` or `#![cfg(P)]`; `None` for any other attribute.
fn cfg_truth(attr: &str) -> Option<Truth> {
    let inner = attr
        .strip_prefix("#[cfg(")
        .or_else(|| attr.strip_prefix("#![cfg("))?
        .strip_suffix(")]")?;
    Some(match predicate(inner) {
        Some((t, "")) => t,
        _ => Truth::Sometimes,
    })
}

/// Is this attribute a `cfg` that is never true (`cfg(any())`, `cfg(FALSE)`,
/// `cfg(not(all()))`), so the item under it is never compiled?
pub(super) fn never_true(attr: &str) -> bool {
    cfg_truth(attr) == Some(Truth::Never)
}

/// Is this attribute (whitespace removed) a `cfg` that includes `test`?
pub(super) fn is_cfg_test(attr: &str) -> bool {
    let Some(inner) = attr
        .strip_prefix("#[cfg(")
        .or_else(|| attr.strip_prefix("#![cfg("))
    else {
        return false;
    };
    // `test` as a word: cfg(test), cfg(all(test, …)), cfg(any(…, test)); not `not(test)`.
    inner
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .any(|w| w == "test")
        && !inner.contains("not(test")
}

/// Does this attribute ignore the test in some build: `#[ignore]`, `#[ignore = "…"]`, or
/// `#[cfg_attr(P, …ignore…)]` (nested `cfg_attr` included) with `P` not never true?
pub(super) fn ignores(attr: &str) -> bool {
    let Some(inner) = attr.strip_prefix("#[").and_then(|a| a.strip_suffix(']')) else {
        return false;
    };
    ignores_meta(inner)
}

/// `ignore…` or `cfg_attr(P, a, b, …)` with one of `a, b, …` ignoring.
fn ignores_meta(meta: &str) -> bool {
    let word = |w: &str| {
        meta.strip_prefix(w)
            .is_some_and(|r| r.is_empty() || r.starts_with(['=', '(']))
    };
    if word("ignore") {
        return true;
    }
    let Some(list) = meta
        .strip_prefix("cfg_attr(")
        .and_then(|l| l.strip_suffix(')'))
    else {
        return false;
    };
    let (truth, rest) = predicate(list).unwrap_or((Truth::Sometimes, list));
    truth != Truth::Never && split_top_level(rest).into_iter().any(ignores_meta)
}

/// `,a,b(c,d),e` → `["a", "b(c,d)", "e"]`: split at commas outside brackets.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i64;
    let mut from = 0;
    for (k, c) in s.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[from..k]);
                from = k + 1;
            }
            _ => {}
        }
    }
    out.push(&s[from..]);
    out.into_iter().filter(|m| !m.is_empty()).collect()
}

#[cfg(test)]
mod truth_table {
    use super::*;

    #[test]
    fn cfgs_that_are_never_true() {
        for a in [
            "#[cfg(any())]",
            "#[cfg(FALSE)]",
            "#[cfg(not(all()))]",
            "#[cfg(all(test,any()))]",
            "#[cfg(never=\"  \")]",
            "#![cfg(any())]",
            // `all` of something that may be true and something never true; `not` of an `any`
            // that is always true.
            "#[cfg(all(any(unix),any()))]",
            "#[cfg(not(any(all())))]",
        ] {
            assert!(never_true(a), "{a}");
        }
        for a in [
            "#[cfg(test)]",
            "#[cfg(all())]",
            "#[cfg(feature=\"   \")]",
            "#[cfg(not(any()))]",
            "#[cfg(any(FALSE,unix))]",
            "#[cfg(not(target_arch=\"       \"))]",
            "#[cfg_attr(any(),ignore)]",
            "#[test]",
            // Sometimes true, so not never: `all` and `any` of one such name, and their `not`.
            "#[cfg(any(unix))]",
            "#[cfg(not(all(test)))]",
            // `not` takes exactly one predicate; anything else is unread, so may be true.
            "#[cfg(not(all(),FALSE))]",
            "#[cfg(not())]",
        ] {
            assert!(!never_true(a), "{a}");
        }
    }

    #[test]
    fn attributes_that_ignore_a_test() {
        for a in [
            "#[ignore]",
            "#[ignore=\"   \"]",
            "#[cfg_attr(all(),ignore)]",
            "#[cfg_attr(unix,ignore=\" \")]",
            "#[cfg_attr(test,should_panic,ignore)]",
            "#[cfg_attr(all(),cfg_attr(all(),ignore))]",
            // The attribute list is split at commas outside brackets only.
            "#[cfg_attr(all(),x(a),ignore)]",
        ] {
            assert!(ignores(a), "{a}");
        }
        for a in [
            "#[cfg_attr(any(),ignore)]",
            "#[ignored_name]",
            "#[cfg_attr(all(),should_panic)]",
            "#[test]",
            "#[cfg_attr(all(),x(a,ignore,b))]",
        ] {
            assert!(!ignores(a), "{a}");
        }
    }
}

//! The Rust reader: labelled functions in `src/`, `Verifies` citations in `tests/`, and the
//! `mod` declarations the module tree is built from, all read from lexed source (see
//! [`super::lexer`]), with the `cfg` rules of [`super::cfg`].
use super::cfg::{ignores, is_cfg_test, never_true};
use super::lexer::{Flat, Item, fn_name, is_ident, items, lex, matching};
use super::{CodeEntry, Site, TestCitation, parse_label};
use std::path::Path;

/// The helper a `proptest!` block's configuration must call so that its case count is fixed
/// in code (see `tests/proptest_cases/mod.rs`).
pub const FIXED_CASES: &str = "fixed_cases";

/// One lexed source file with its items and bracket index.
struct Source {
    flat: Flat,
    /// Each line's lexed code (see [`super::lexer::LexLine::code`]).
    code: Vec<String>,
    items: Vec<Item>,
    /// The original lines (string contents intact), for `#[path = "…"]`.
    raw: Vec<String>,
    /// The file's inner attributes (`#![…]`), whitespace removed.
    inner_attrs: Vec<String>,
}

impl Source {
    fn new(text: &str) -> Source {
        let lines = lex(text);
        let inner_attrs = lines
            .iter()
            .map(|l| l.code.chars().filter(|c| !c.is_whitespace()).collect())
            .filter(|t: &String| t.starts_with("#!["))
            .collect();
        Source {
            flat: Flat::new(&lines),
            code: lines.iter().map(|l| l.code.clone()).collect(),
            items: items(&lines),
            raw: text.lines().map(str::to_string).collect(),
            inner_attrs,
        }
    }

    fn whole_file(&self, pred: impl Fn(&str) -> bool) -> bool {
        self.inner_attrs.iter().any(|a| pred(a))
    }

    /// The items whose attributes satisfy `pred`, as [`Region`]s: an item with a body up to
    /// its closing brace, a body-less one up to its `;`.
    fn regions(&self, pred: impl Fn(&str) -> bool) -> Vec<Region> {
        let last = self.flat.starts.len().saturating_sub(1);
        self.items
            .iter()
            .filter(|it| it.line <= last)
            .filter_map(|it| {
                let attr = it.attrs.iter().find(|a| pred(a))?.clone();
                let end = match self.flat.body_or_semicolon(self.flat.starts[it.line])? {
                    (k, '{') => self.flat.matching(k).map_or(last, |e| self.flat.line_of(e)),
                    (k, _) => self.flat.line_of(k),
                };
                Some(Region {
                    first: it.line,
                    last: end,
                    attr,
                })
            })
            .collect()
    }

    /// The text inside the body of the item on `line`, or `None` for a body-less item.
    fn body_text(&self, line: usize) -> Option<String> {
        let (open, close) = self.flat.body(line)?;
        Some(self.flat.text(open + 1, close))
    }

    /// The body of the function `name` defined in this file, if any.
    fn fn_body(&self, name: &str) -> Option<String> {
        (0..self.flat.starts.len())
            .find(|&n| fn_name(self.line_code(n).trim()) == Some(name))
            .and_then(|n| self.body_text(n))
    }

    fn line_code(&self, n: usize) -> &str {
        &self.code[n]
    }
}

/// An item under an attribute, with the lines (0-based, inclusive) it spans.
struct Region {
    first: usize,
    last: usize,
    /// The attribute, whitespace removed.
    attr: String,
}

/// The first region that holds `line`.
fn inside(regions: &[Region], line: usize) -> Option<&Region> {
    regions.iter().find(|r| (r.first..=r.last).contains(&line))
}

/// The macros whose call panics.
const PANICS: [&str; 4] = ["panic", "todo", "unimplemented", "unreachable"];

/// Is `body` (lexed, without its braces) nothing but calls of [`PANICS`] macros, each
/// optionally followed by `;`?
fn only_panics(body: &str) -> bool {
    let chars: Vec<char> = body.chars().collect();
    let at = |i: usize| chars.get(i).copied();
    let skip = |mut i: usize| {
        while at(i).is_some_and(char::is_whitespace) {
            i += 1;
        }
        i
    };
    let mut i = skip(0);
    let mut calls = 0;
    while i < chars.len() {
        let rest: String = chars[i..].iter().take(16).collect();
        let Some(m) = PANICS.iter().find(|m| rest.starts_with(*m)) else {
            return false;
        };
        i = skip(i + m.len());
        if at(i) != Some('!') {
            return false;
        }
        i = skip(i + 1);
        if !at(i).is_some_and(|c| matches!(c, '(' | '[' | '{')) {
            return false;
        }
        let Some(end) = matching(&chars, i) else {
            return false;
        };
        i = skip(end + 1);
        if at(i) == Some(';') {
            i = skip(i + 1);
        }
        calls += 1;
    }
    calls > 0
}

fn first_label_in(s: &str) -> Option<&str> {
    let start = s.find("r[")?;
    let end = s[start..].find(']')? + start;
    parse_label(&s[start..=end])
}

/// Every `r[…]` token with a dot in it (a label, valid or not) in `s`.
fn label_tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(p) = rest.find("r[") {
        let after = &rest[p + 2..];
        let Some(e) = after.find(']') else { break };
        let inner = &after[..e];
        let standalone = p == 0 || !rest[..p].ends_with(is_ident);
        if standalone && inner.contains('.') && !inner.contains(char::is_whitespace) {
            out.push(inner.to_string());
        }
        rest = &after[e..];
    }
    out
}

/// Why the item at `it` is never compiled, if it is not: the whole file, the item or an item
/// around it is under a `cfg` that is never true.
fn never_compiled(src: &Source, never: &[Region], it: &Item) -> Option<String> {
    let attr = src
        .inner_attrs
        .iter()
        .find(|a| never_true(a))
        .or_else(|| it.attrs.iter().find(|a| never_true(a)))
        .or_else(|| inside(never, it.line).map(|r| &r.attr))?;
    Some(format!("it is never compiled ({attr} is never true)"))
}

/// Functions in one Rust library source whose first doc line cites a label. Text inside
/// comments and string literals is not read; items under `#[cfg(test)]` are skipped (a
/// labelled function must be library code).
pub fn code_entries(file: &Path, text: &str) -> Vec<CodeEntry> {
    let src = Source::new(text);
    if src.whole_file(is_cfg_test) {
        return Vec::new();
    }
    let tests = src.regions(is_cfg_test);
    let never = src.regions(never_true);
    let mut out = Vec::new();
    for it in &src.items {
        let Some((_, first)) = it.doc.first() else {
            continue;
        };
        let Some(label) = first_label_in(first.trim()) else {
            continue;
        };
        if it.attrs.iter().any(|a| is_cfg_test(a)) || inside(&tests, it.line).is_some() {
            continue;
        }
        let Some(name) = fn_name(&it.text) else {
            continue;
        };
        out.push(CodeEntry {
            label: label.to_string(),
            function: name.to_string(),
            site: Site {
                file: file.to_path_buf(),
                line: it.line + 1,
            },
            stub: src.body_text(it.line).is_some_and(|b| only_panics(&b)),
            not_compiled: never_compiled(&src, &never, it),
        });
    }
    out
}

/// A `proptest! { … }` block: its line range and whether its configuration fixes the case
/// count in code.
struct PropBlock {
    first: usize,
    last: usize,
    fixed: bool,
}

fn prop_blocks(src: &Source) -> Vec<PropBlock> {
    let flat = &src.flat;
    let mut out = Vec::new();
    for n in 0..flat.starts.len() {
        let code = src.line_code(n);
        let Some(p) = code.find("proptest!") else {
            continue;
        };
        let from = flat.starts[n] + code[..p].chars().count() + "proptest!".len();
        let open = flat.chars[from..]
            .iter()
            .position(|c| !c.is_whitespace())
            .map(|k| from + k)
            .filter(|&k| matches!(flat.chars[k], '{' | '(' | '['));
        let Some((o, e)) = open.and_then(|o| Some((o, flat.matching(o)?))) else {
            continue;
        };
        let block = flat.text(o, e);
        // `#![proptest_config(EXPR)]`: the text from `proptest_config` to its closing bracket
        // (EXPR with the name in front), and the bodies of the functions it calls.
        let config = block.find("proptest_config").and_then(|c| {
            let chars: Vec<char> = block[c..].chars().collect();
            let close = matching(&chars, 0)?;
            Some(chars[..=close].iter().collect::<String>())
        });
        let fixed = config.is_some_and(|expr| {
            let called = expr
                .split(|c: char| !is_ident(c))
                .filter(|w| !w.is_empty())
                .filter_map(|w| src.fn_body(w));
            std::iter::once(expr.clone())
                .chain(called)
                .any(|t| t.contains(&format!("{FIXED_CASES}(")))
        });
        out.push(PropBlock {
            first: n,
            last: flat.line_of(e),
            fixed,
        });
    }
    out
}

/// The `Verifies r[…]` citations of one test source. `stem` names the test binary
/// (`tests/<stem>.rs`); a test's name is `<stem>::<fn name>`.
pub fn test_citations(file: &Path, stem: &str, text: &str) -> Vec<TestCitation> {
    let src = Source::new(text);
    let props = prop_blocks(&src);
    let never = src.regions(never_true);
    let mut out = Vec::new();
    for it in &src.items {
        let mut labels = Vec::new();
        let mut doc_line = 0;
        for (n, d) in &it.doc {
            if d.trim_start().starts_with("Verifies") {
                for t in label_tokens(d) {
                    if !labels.contains(&t) {
                        labels.push(t);
                    }
                }
                doc_line = *n;
            }
        }
        if labels.is_empty() {
            continue;
        }
        let name = fn_name(&it.text);
        // The block's first line is `proptest!` itself, so no test starts there.
        let prop = props.iter().find(|b| (b.first..=b.last).contains(&it.line));
        let is_test = it.attrs.iter().any(|a| a == "#[test]") || prop.is_some();
        let not_a_test = match name {
            None => Some("no function follows the doc comment".to_string()),
            Some(_) if !is_test => Some("it is not a #[test] function".to_string()),
            Some(_) => never_compiled(&src, &never, it)
                .or_else(|| {
                    let a = it.attrs.iter().find(|a| ignores(a))?;
                    Some(format!("the test is ignored ({a})"))
                })
                .or_else(|| {
                    let empty = src.body_text(it.line).is_none_or(|b| b.trim().is_empty());
                    empty.then(|| "the test's body is empty".to_string())
                })
                .or_else(|| {
                    prop.filter(|b| !b.fixed).map(|_| {
                        format!(
                            "its proptest! block does not fix the case count in code \
                             (#![proptest_config(…{FIXED_CASES}(N)…)]), so PROPTEST_CASES=0 \
                             would run it zero times"
                        )
                    })
                }),
        };
        let (test, line) = match name {
            Some(n) => (format!("{stem}::{n}"), it.line + 1),
            None => (format!("{stem}::(no function)"), doc_line + 1),
        };
        for label in labels {
            out.push(TestCitation {
                label,
                test: test.clone(),
                site: Site {
                    file: file.to_path_buf(),
                    line,
                },
                not_a_test: not_a_test.clone(),
            });
        }
    }
    out
}

/// A `mod name;` declaration (without a body) in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ModDecl {
    /// The module's name.
    pub(super) name: String,
    /// The inline modules around it, outermost first (`mod a { mod name; }` → `["a"]`).
    pub(super) inline: Vec<String>,
    /// The value of `#[path = "…"]`, if it has one.
    pub(super) path: Option<String>,
    /// Under `#[cfg(test)]` (on it or around it): compiled for unit tests only.
    pub(super) test_only: bool,
}

/// The `mod name;` declarations of one file that are compiled in some build (those under a
/// `cfg` that is never true are left out), or none when the whole file is never compiled.
pub(super) fn mod_decls(text: &str) -> Vec<ModDecl> {
    let src = Source::new(text);
    if src.whole_file(never_true) {
        return Vec::new();
    }
    let never = src.regions(never_true);
    let tests = src.regions(is_cfg_test);
    let mut inline: Vec<(String, usize, usize)> = Vec::new();
    let mut out = Vec::new();
    for n in 0..src.flat.starts.len() {
        let code = src.line_code(n);
        let words: Vec<&str> = code
            .split(|c: char| !is_ident(c))
            .filter(|w| !w.is_empty())
            .collect();
        let Some(p) = words.iter().position(|&w| w == "mod") else {
            continue;
        };
        let Some(name) = words.get(p + 1) else {
            continue;
        };
        let prefix_ok = words[..p]
            .iter()
            .all(|w| matches!(*w, "pub" | "crate" | "super" | "self" | "in"))
            || code.trim_start().starts_with("#[");
        if !prefix_ok || inside(&never, n).is_some() {
            continue;
        }
        let Some((k, c)) = src.flat.body_or_semicolon(src.flat.starts[n]) else {
            continue;
        };
        if c == '{' {
            let end = src.flat.matching(k).map_or(n, |e| src.flat.line_of(e));
            inline.push((name.to_string(), n, end));
            continue;
        }
        let it = src.items.iter().find(|it| it.line == n);
        let path = it
            .filter(|it| it.attrs.iter().any(|a| a.starts_with("#[path=")))
            .and_then(|it| {
                let raw = src.raw[it.start..=n].join("\n");
                let from = raw.find("path")?;
                let q = raw[from..].find('"')? + from + 1;
                let e = raw[q..].find('"')? + q;
                Some(raw[q..e].to_string())
            });
        out.push(ModDecl {
            name: name.to_string(),
            inline: inline
                .iter()
                // Line `a` opens the inline module and holds no other declaration.
                .filter(|(_, a, b)| (*a..=*b).contains(&n))
                .map(|(m, _, _)| m.clone())
                .collect(),
            path,
            test_only: src.whole_file(is_cfg_test) || inside(&tests, n).is_some(),
        });
    }
    out
}

#[cfg(test)]
mod readers {
    use super::*;

    /// A body with no statement at all is empty, not a stub; one `panic!` (with or without
    /// `;`) or several are.
    #[test]
    fn only_a_body_of_panics_is_a_stub() {
        for (body, stub) in [
            ("", false),
            ("  \n ", false),
            ("panic!()", true),
            (" todo!(); unreachable!{} ", true),
            ("panic!(); 1", false),
        ] {
            assert_eq!(only_panics(body), stub, "{body:?}");
        }
    }

    /// A citation token is `r[…]` not glued to an identifier, with a dot and no whitespace
    /// inside.
    #[test]
    fn label_tokens_are_standalone_dotted_and_unspaced() {
        assert_eq!(
            label_tokens("r[a.b], r[nodot], xr[c.d], r[e f.g] (r[h.i])"),
            ["a.b", "h.i"]
        );
    }

    /// A `mod` declaration after an inline module, or after an item under a `cfg` that is
    /// never true, is outside it.
    #[test]
    fn a_mod_after_an_inline_or_never_compiled_module_is_outside_it() {
        let d = mod_decls("mod a {\n    mod b;\n}\nmod c;\n#[cfg(any())]\nmod n {\n}\nmod e;\n");
        let got: Vec<(&str, Vec<String>)> = d
            .iter()
            .map(|m| (m.name.as_str(), m.inline.clone()))
            .collect();
        assert_eq!(
            got,
            [("b", vec!["a".to_string()]), ("c", vec![]), ("e", vec![])]
        );
    }

    /// A citation's line: its function's, or, with no function after the doc comment, the
    /// `Verifies` line's (1-based).
    #[test]
    fn a_citation_without_a_function_is_placed_at_its_verifies_line() {
        let c = test_citations(
            Path::new("t.rs"),
            "t",
            "\n\n/// Verifies r[a.b]\nconst X: u8 = 1;\n/// Verifies r[c.d]\n#[test]\nfn f() { g() }\n",
        );
        let got: Vec<(&str, &str, usize)> = c
            .iter()
            .map(|c| (c.label.as_str(), c.test.as_str(), c.site.line))
            .collect();
        assert_eq!(got, [("a.b", "t::(no function)", 3), ("c.d", "t::f", 7)]);
    }

    /// A `proptest!` block indented inside a module still holds its tests; a function after
    /// the block is outside it.
    #[test]
    fn an_indented_proptest_block_holds_its_tests_and_not_what_follows() {
        let c = test_citations(
            Path::new("t.rs"),
            "t",
            "mod m {\n    proptest! {\n        #![proptest_config(fixed_cases(8))]\n        \
             /// Verifies r[a.b]\n        fn p(x in 0u8..3) { g(x) }\n    }\n    \
             /// Verifies r[c.d]\n    fn helper() { g(1) }\n}\n",
        );
        let got: Vec<(&str, Option<&str>)> = c
            .iter()
            .map(|c| (c.test.as_str(), c.not_a_test.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("t::p", None),
                ("t::helper", Some("it is not a #[test] function"))
            ]
        );
    }
}

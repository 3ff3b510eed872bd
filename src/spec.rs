//! The spec↔code↔test registry.
//!
//! Every equation in `spec/*.md` sits on a line of its own as a label, `r[ns.topic.name]`
//! (the Rust Reference's convention). Exactly one function implements it, and that function
//! cites the label in the **first line** of its doc comment. The function's name is the label
//! without its namespace, with dots turned into underscores: `r[bp.grad.w5]` ↔ `fn grad_w5`,
//! `r[cnn.conv.forward]` ↔ `fn conv_forward`.
//!
//! Every label is also cited by at least one test: a `#[test]` function in `tests/**/*.rs`
//! (or a function inside a `proptest! { … }` block) whose doc comment has a line starting with
//! `Verifies` followed by one or more `r[label]` tokens:
//!
//! ```text
//! /// Verifies r[cnn.conv.backward_input] r[cnn.conv.backward_weight] against central differences.
//! #[test]
//! fn conv3x3_gradients_match_central_differences() {
//! ```
//!
//! The registry is read from the sources themselves, so it cannot drift from the code; [`check`]
//! reports orphans on either side, duplicates, misnamed and stub functions, labels no test
//! cites and citations that are not on a test.
//!
//! The readers are deliberately small, but they are not fooled by text that only looks like a
//! label or a doc comment: in markdown, a label must sit outside fenced code blocks (``` or
//! `~~~`, any length, with or without an info string) and be indented by at most three spaces
//! (deeper lines are indented code or continuation lines); in Rust, a small lexer blanks out
//! block comments (nested), string, raw-string and character literals before anything is read,
//! skips items under `#[cfg(test)]` in `src/` (a labelled function must be library code), and
//! flags a labelled function whose body is only `todo!()`, `unimplemented!()` or
//! `unreachable!()`.
//!
//! [`check`]: Registry::check
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// Where a label was found: file (relative to the project root when loaded with
/// [`Registry::load`]) and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The file the label was found in.
    pub file: PathBuf,
    /// The 1-based line number within `file`.
    pub line: usize,
}

impl Site {
    /// The file with `/` separators, whatever the platform.
    pub fn file_str(&self) -> String {
        self.file.to_string_lossy().replace('\\', "/")
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file_str(), self.line)
    }
}

/// One function of the code's registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeEntry {
    /// The label the function cites in the first line of its doc comment.
    pub label: String,
    /// The function's name.
    pub function: String,
    /// Where the function is defined (the line of its `fn`).
    pub site: Site,
    /// The body is nothing but `todo!(…)`, `unimplemented!(…)` or `unreachable!(…)`.
    pub stub: bool,
}

/// One label cited by one test function (a `/// Verifies r[…] …` doc line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCitation {
    /// The cited label, as written (it may name no equation).
    pub label: String,
    /// `<file stem>::<fn name>`, e.g. `cnn_semantics::eval_mode_normalises_with_the_running_statistics`.
    pub test: String,
    /// The line of the `fn` (or of the doc line when no function follows it).
    pub site: Site,
    /// Why the cited item is not a test that runs, if it is not one.
    pub not_a_test: Option<String>,
}

/// A violation of the spec↔code↔test registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A label in the spec that no function cites.
    EquationWithoutFunction {
        /// The equation's label.
        label: String,
        /// Where the spec defines the label.
        site: Site,
    },
    /// A function citing a label that no spec defines.
    FunctionWithoutEquation {
        /// The label the function cites.
        label: String,
        /// The citing function's name.
        function: String,
        /// Where the function is defined.
        site: Site,
    },
    /// A label defined twice in the spec.
    DuplicateEquation {
        /// The label defined twice.
        label: String,
        /// Where the spec defines it first.
        first: Site,
        /// Where the spec defines it again.
        second: Site,
    },
    /// A label cited by two functions.
    DuplicateFunction {
        /// The label cited twice.
        label: String,
        /// The first function citing it.
        first: Site,
        /// The second function citing it.
        second: Site,
    },
    /// A function whose name does not follow the label.
    Misnamed {
        /// The label the function cites.
        label: String,
        /// The function's actual name.
        function: String,
        /// The name the label calls for (the label without its namespace, dots as underscores).
        expected: String,
        /// Where the function is defined.
        site: Site,
    },
    /// A labelled function whose body is only `todo!()`, `unimplemented!()` or `unreachable!()`.
    StubFunction {
        /// The label the function cites.
        label: String,
        /// The stub function's name.
        function: String,
        /// Where the function is defined.
        site: Site,
    },
    /// A label in the spec that no test cites.
    EquationWithoutTest {
        /// The equation's label.
        label: String,
        /// Where the spec defines the label.
        site: Site,
    },
    /// A test citing a label that no spec defines.
    TestCitesUnknownEquation {
        /// The label the test cites.
        label: String,
        /// The citing test, as `<file stem>::<fn name>`.
        test: String,
        /// Where the test (or its citing doc line) is.
        site: Site,
    },
    /// A `Verifies r[…]` doc line on something that is not a test that runs.
    CitationNotOnTest {
        /// The cited label.
        label: String,
        /// The citing item, as `<file stem>::<name>`.
        item: String,
        /// Why the item is not a test that runs.
        reason: String,
        /// Where the item (or the citing doc line) is.
        site: Site,
    },
}

impl Problem {
    /// The label the problem is about.
    pub fn label(&self) -> &str {
        match self {
            Problem::EquationWithoutFunction { label, .. }
            | Problem::FunctionWithoutEquation { label, .. }
            | Problem::DuplicateEquation { label, .. }
            | Problem::DuplicateFunction { label, .. }
            | Problem::Misnamed { label, .. }
            | Problem::StubFunction { label, .. }
            | Problem::EquationWithoutTest { label, .. }
            | Problem::TestCitesUnknownEquation { label, .. }
            | Problem::CitationNotOnTest { label, .. } => label,
        }
    }
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
            Problem::StubFunction {
                label,
                function,
                site,
            } => write!(
                f,
                "{site}: fn {function} cites r[{label}] but its body is only a todo!/unimplemented!/unreachable!"
            ),
            Problem::EquationWithoutTest { label, site } => {
                write!(
                    f,
                    "{site}: equation r[{label}] is cited by no test (`/// Verifies r[{label}]`)"
                )
            }
            Problem::TestCitesUnknownEquation { label, test, site } => write!(
                f,
                "{site}: test {test} cites r[{label}], which no spec defines"
            ),
            Problem::CitationNotOnTest {
                label,
                item,
                reason,
                site,
            } => write!(f, "{site}: {item} cites r[{label}] but {reason}"),
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

// ------------------------------------------------------------------------------ markdown

/// Leading indentation in columns (a tab advances to the next multiple of 4).
fn indent_columns(line: &str) -> usize {
    let mut col = 0;
    for c in line.chars() {
        match c {
            ' ' => col += 1,
            '\t' => col += 4 - col % 4,
            _ => break,
        }
    }
    col
}

/// A CommonMark fence line: (fence char, run length, rest of the line after the run).
fn fence(line: &str) -> Option<(char, usize, &str)> {
    if indent_columns(line) > 3 {
        return None;
    }
    let t = line.trim_start_matches([' ', '\t']);
    let c = t.chars().next().filter(|c| matches!(c, '`' | '~'))?;
    let n = t.chars().take_while(|&x| x == c).count();
    if n < 3 {
        return None;
    }
    let rest = &t[n..];
    // A backtick fence's info string may not contain a backtick (else it is inline code).
    if c == '`' && rest.contains('`') {
        return None;
    }
    Some((c, n, rest))
}

/// Labels defined in one markdown text: a line consisting of exactly `r[label]`, indented by
/// at most three spaces, outside fenced code blocks. (A line indented by four or more is
/// indented code, or a paragraph's continuation, never a label.)
pub fn spec_labels(file: &Path, text: &str) -> Vec<(String, Site)> {
    let mut out = Vec::new();
    let mut open: Option<(char, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        if let Some((c, n)) = open {
            if let Some((c2, n2, rest)) = fence(line)
                && c2 == c
                && n2 >= n
                && rest.trim().is_empty()
            {
                open = None;
            }
            continue;
        }
        if let Some((c, n, _)) = fence(line) {
            open = Some((c, n));
            continue;
        }
        if indent_columns(line) > 3 {
            continue;
        }
        if let Some(l) = parse_label(line.trim()) {
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

// ------------------------------------------------------------------------------ Rust lexer

/// One source line after lexing.
#[derive(Debug, Default, Clone)]
struct LexLine {
    /// The line with every comment removed and the contents of string and character literals
    /// blanked (quotes kept), so braces, `fn` and `#[` in it are real tokens.
    code: String,
    /// The text after `///` when the line's first token is an outer doc comment.
    doc: Option<String>,
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Splits Rust source into [`LexLine`]s. Handles nested block comments, line comments,
/// string literals (escapes, spanning lines), raw strings `r#"…"#` (with `b`/`c` prefixes),
/// character literals and lifetimes.
fn lex(text: &str) -> Vec<LexLine> {
    let s: Vec<char> = text.chars().collect();
    let mut lines = vec![LexLine::default()];
    // Only whitespace seen on this line so far, in code (not inside a comment or literal).
    let mut clean = true;
    let mut i = 0;
    let newline = |lines: &mut Vec<LexLine>, clean: &mut bool| {
        lines.push(LexLine::default());
        *clean = true;
    };
    while i < s.len() {
        let c = s[i];
        let next = s.get(i + 1).copied();
        if c == '\n' {
            newline(&mut lines, &mut clean);
            i += 1;
        } else if c == '/' && next == Some('/') {
            // Line comment to the end of the line.
            let end = s[i..]
                .iter()
                .position(|&x| x == '\n')
                .map_or(s.len(), |p| i + p);
            let body: String = s[i..end].iter().collect();
            if clean && body.starts_with("///") && !body.starts_with("////") {
                lines.last_mut().unwrap().doc = Some(body[3..].trim_end_matches('\r').into());
            }
            clean = false;
            i = end;
        } else if c == '/' && next == Some('*') {
            let mut depth = 0usize;
            clean = false;
            while i < s.len() {
                if s[i] == '/' && s.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if s[i] == '*' && s.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if s[i] == '\n' {
                        newline(&mut lines, &mut clean);
                        clean = false;
                    }
                    i += 1;
                }
            }
        } else if let Some((hashes, start)) = raw_string_start(&s, i) {
            // r"…", r#"…"#, br"…", cr#"…"#: no escapes; ends at `"` followed by the hashes.
            let code = &mut lines.last_mut().unwrap().code;
            code.extend(&s[i..start]);
            clean = false;
            i = start;
            loop {
                if i >= s.len() {
                    break;
                }
                if s[i] == '"' && (1..=hashes).all(|k| s.get(i + k) == Some(&'#')) {
                    let code = &mut lines.last_mut().unwrap().code;
                    code.push('"');
                    code.extend(std::iter::repeat_n('#', hashes));
                    i += 1 + hashes;
                    break;
                }
                if s[i] == '\n' {
                    newline(&mut lines, &mut clean);
                    clean = false;
                } else {
                    lines.last_mut().unwrap().code.push(' ');
                }
                i += 1;
            }
        } else if c == '"' {
            lines.last_mut().unwrap().code.push('"');
            clean = false;
            i += 1;
            while i < s.len() && s[i] != '"' {
                if s[i] == '\\' {
                    lines.last_mut().unwrap().code.push(' ');
                    i += 1;
                }
                if i < s.len() {
                    if s[i] == '\n' {
                        newline(&mut lines, &mut clean);
                        clean = false;
                    } else {
                        lines.last_mut().unwrap().code.push(' ');
                    }
                    i += 1;
                }
            }
            lines.last_mut().unwrap().code.push('"');
            i += 1;
        } else if c == '\'' {
            clean = false;
            // A character literal: '\…' or 'x'; anything else is a lifetime or a label.
            let len = if next == Some('\\') {
                s[i + 2..]
                    .iter()
                    .skip(1)
                    .position(|&x| x == '\'')
                    .map(|p| p + 4)
            } else if s.get(i + 2) == Some(&'\'') && next != Some('\n') {
                Some(3)
            } else {
                None
            };
            let code = &mut lines.last_mut().unwrap().code;
            match len {
                Some(n) => {
                    code.push('\'');
                    code.extend(std::iter::repeat_n(' ', n - 2));
                    code.push('\'');
                    i += n;
                }
                None => {
                    code.push('\'');
                    i += 1;
                }
            }
        } else {
            if !c.is_whitespace() {
                clean = false;
            }
            if c != '\r' {
                lines.last_mut().unwrap().code.push(c);
            }
            i += 1;
        }
    }
    if text.ends_with('\n') {
        lines.pop();
    }
    lines
}

/// At `s[i]`, the start of a raw string literal? Returns (number of `#`, index after the
/// opening `"`).
fn raw_string_start(s: &[char], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if matches!(s[j], 'b' | 'c') && s.get(j + 1) == Some(&'r') {
        j += 1;
    }
    if s[j] != 'r' || (i > 0 && is_ident(s[i - 1])) {
        return None;
    }
    let hashes = s[j + 1..].iter().take_while(|&&c| c == '#').count();
    (s.get(j + 1 + hashes) == Some(&'"')).then_some((hashes, j + 2 + hashes))
}

/// Lexed lines joined again, with the character offset of each line's start.
struct Flat {
    chars: Vec<char>,
    starts: Vec<usize>,
}

impl Flat {
    fn new(lines: &[LexLine]) -> Flat {
        let mut chars = Vec::new();
        let mut starts = Vec::with_capacity(lines.len());
        for l in lines {
            starts.push(chars.len());
            chars.extend(l.code.chars());
            chars.push('\n');
        }
        Flat { chars, starts }
    }

    fn line_of(&self, idx: usize) -> usize {
        self.starts.partition_point(|&s| s <= idx) - 1
    }

    /// The index of the bracket closing the one at `open`.
    fn matching(&self, open: usize) -> Option<usize> {
        let mut depth = 0i64;
        for (k, &c) in self.chars.iter().enumerate().skip(open) {
            match c {
                '{' | '(' | '[' => depth += 1,
                '}' | ')' | ']' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(k);
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// From `from`, the first `{` or `;` outside parentheses and brackets: the start of an
    /// item's body, or the end of a body-less item.
    fn body_or_semicolon(&self, from: usize) -> Option<(usize, char)> {
        let mut depth = 0i64;
        for (k, &c) in self.chars.iter().enumerate().skip(from) {
            match c {
                '(' | '[' => depth += 1,
                ')' | ']' => depth -= 1,
                '{' | ';' if depth == 0 => return Some((k, c)),
                _ => {}
            }
        }
        None
    }
}

/// An item (fn, mod, …) with the doc comment and attributes above it.
struct Item {
    /// The doc lines (text after `///`), in order, with their 0-based line numbers.
    doc: Vec<(usize, String)>,
    /// Every attribute's text with whitespace removed, e.g. `#[cfg(test)]`.
    attrs: Vec<String>,
    /// 0-based line of the item itself (first line that is neither doc, attribute nor blank).
    line: usize,
    /// The item's first line of code, without the attributes before it on the same line.
    text: String,
}

/// Every item that has a preamble of doc lines and/or attributes (blank lines may sit between
/// them), with the preamble read.
fn items(lines: &[LexLine]) -> Vec<Item> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let starts_preamble =
            lines[i].doc.is_some() || lines[i].code.trim_start().starts_with("#[");
        if !starts_preamble {
            i += 1;
            continue;
        }
        let mut doc = Vec::new();
        let mut attrs = Vec::new();
        let mut j = i;
        // Code after an attribute's closing bracket on the same line (`#[test] fn a() {}`).
        let mut text = None;
        while j < lines.len() {
            let l = &lines[j];
            let t = l.code.trim();
            if let Some(d) = &l.doc {
                doc.push((j, d.clone()));
                j += 1;
            } else if t.starts_with("#[") {
                // An attribute, possibly over several lines: up to its closing bracket.
                let mut a = String::new();
                let mut depth = 0i64;
                let mut k = j;
                let mut rest = String::new();
                'attr: while k < lines.len() {
                    for (p, ch) in lines[k].code.char_indices() {
                        if !ch.is_whitespace() {
                            a.push(ch);
                        }
                        match ch {
                            '[' | '(' | '{' => depth += 1,
                            ']' | ')' | '}' => {
                                depth -= 1;
                                if depth == 0 {
                                    rest = lines[k].code[p + 1..].to_string();
                                    break 'attr;
                                }
                            }
                            _ => {}
                        }
                    }
                    k += 1;
                }
                attrs.push(a);
                if rest.trim().is_empty() {
                    j = k + 1;
                } else if rest.trim_start().starts_with("#[") {
                    // Another attribute on the same line: read the line again from there.
                    let mut more = items(&[LexLine {
                        code: rest,
                        doc: None,
                    }]);
                    if let Some(m) = more.pop() {
                        attrs.extend(m.attrs);
                        text = Some(m.text);
                    }
                    j = k;
                    break;
                } else {
                    text = Some(rest);
                    j = k;
                    break;
                }
            } else if t.is_empty() {
                j += 1;
            } else {
                break;
            }
        }
        let text = text.unwrap_or_else(|| lines.get(j).map_or(String::new(), |l| l.code.clone()));
        out.push(Item {
            doc,
            attrs,
            line: j,
            text,
        });
        i = j.max(i + 1);
    }
    out
}

fn fn_name(line: &str) -> Option<&str> {
    let idx = line.find("fn ")?;
    let before = &line[..idx];
    let ok_prefix = before.split_whitespace().all(|w| {
        matches!(
            w,
            "pub" | "const" | "unsafe" | "extern" | "async" | "default"
        ) || w.starts_with("pub(")
            // `extern "C"`, its string blanked by the lexer.
            || w.chars().all(|c| c == '"')
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

/// Is this attribute (whitespace removed) a `cfg` that includes `test`?
fn is_cfg_test(attr: &str) -> bool {
    let Some(inner) = attr.strip_prefix("#[cfg(") else {
        return false;
    };
    // `test` as a word: cfg(test), cfg(all(test, …)), cfg(any(…, test)); not `not(test)`.
    inner.split(|c: char| !is_ident(c)).any(|w| w == "test") && !inner.contains("not(test")
}

/// Line ranges (0-based, inclusive) of items under `#[cfg(test)]`, plus the names of
/// body-less `#[cfg(test)] mod name;` declarations, plus whether the whole file is test-only
/// (`#![cfg(test)]`).
fn cfg_test_regions(lines: &[LexLine], flat: &Flat) -> (Vec<(usize, usize)>, Vec<String>, bool) {
    let whole = lines.iter().any(|l| {
        let t: String = l.code.chars().filter(|c| !c.is_whitespace()).collect();
        t.starts_with("#![cfg(") && is_cfg_test(&t.replacen("#![", "#[", 1))
    });
    let mut regions = Vec::new();
    let mut mods = Vec::new();
    for it in items(lines) {
        if !it.attrs.iter().any(|a| is_cfg_test(a)) || it.line >= lines.len() {
            continue;
        }
        let start = flat.starts[it.line];
        match flat.body_or_semicolon(start) {
            Some((k, '{')) => {
                let end = flat
                    .matching(k)
                    .map_or(lines.len() - 1, |e| flat.line_of(e));
                regions.push((it.line, end));
            }
            Some((k, _)) => {
                regions.push((it.line, flat.line_of(k)));
                let words: Vec<&str> = it
                    .text
                    .split(|c: char| !is_ident(c))
                    .filter(|w| !w.is_empty())
                    .collect();
                if let Some(p) = words.iter().position(|&w| w == "mod")
                    && let Some(name) = words.get(p + 1)
                {
                    mods.push(name.to_string());
                }
            }
            None => {}
        }
    }
    (regions, mods, whole)
}

/// Is the body of the `fn` on line `line` only `todo!(…)`, `unimplemented!(…)` or
/// `unreachable!(…)` (optionally followed by `;`)?
fn is_stub(flat: &Flat, line: usize) -> bool {
    let Some((open, '{')) = flat.body_or_semicolon(flat.starts[line]) else {
        return false;
    };
    let Some(close) = flat.matching(open) else {
        return false;
    };
    let body: String = flat.chars[open + 1..close].iter().collect();
    let body = body.trim();
    for mac in ["todo", "unimplemented", "unreachable"] {
        let Some(rest) = body.strip_prefix(mac) else {
            continue;
        };
        let Some(rest) = rest.trim_start().strip_prefix('!') else {
            continue;
        };
        let rest = rest.trim_start();
        if !rest.starts_with(['(', '[', '{']) {
            continue;
        }
        let chars: Vec<char> = rest.chars().collect();
        let mut depth = 0i64;
        let mut end = None;
        for (k, &c) in chars.iter().enumerate() {
            match c {
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(k);
                        break;
                    }
                }
                _ => {}
            }
        }
        if let Some(e) = end {
            let tail: String = chars[e + 1..].iter().collect();
            if matches!(tail.trim(), "" | ";") {
                return true;
            }
        }
    }
    false
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
        rest = &after[e + 1..];
    }
    out
}

/// Functions in one Rust library source whose first doc line cites a label. Text inside
/// comments and string literals is not read; items under `#[cfg(test)]` are skipped.
pub fn code_entries(file: &Path, text: &str) -> Vec<CodeEntry> {
    code_entries_and_test_mods(file, text).0
}

fn code_entries_and_test_mods(file: &Path, text: &str) -> (Vec<CodeEntry>, Vec<String>) {
    let lines = lex(text);
    let flat = Flat::new(&lines);
    let (regions, mods, whole) = cfg_test_regions(&lines, &flat);
    if whole {
        return (Vec::new(), mods);
    }
    let mut out = Vec::new();
    for it in items(&lines) {
        let Some((_, first)) = it.doc.first() else {
            continue;
        };
        let Some(label) = first_label_in(first.trim()) else {
            continue;
        };
        if it.attrs.iter().any(|a| is_cfg_test(a))
            || regions.iter().any(|&(a, b)| (a..=b).contains(&it.line))
        {
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
            stub: is_stub(&flat, it.line),
        });
    }
    (out, mods)
}

/// The `Verifies r[…]` citations of one test source. `stem` names the test binary
/// (`tests/<stem>.rs`); a test's name is `<stem>::<fn name>`.
pub fn test_citations(file: &Path, stem: &str, text: &str) -> Vec<TestCitation> {
    let lines = lex(text);
    let flat = Flat::new(&lines);
    // `proptest! { … }` blocks: every fn inside is a test.
    let mut prop_regions = Vec::new();
    for (n, l) in lines.iter().enumerate() {
        if let Some(p) = l.code.find("proptest!") {
            let from = flat.starts[n] + l.code[..p].chars().count() + "proptest!".len();
            let open = flat.chars[from..]
                .iter()
                .position(|c| !c.is_whitespace())
                .map(|k| from + k)
                .filter(|&k| matches!(flat.chars[k], '{' | '(' | '['));
            if let Some(o) = open
                && let Some(e) = flat.matching(o)
            {
                prop_regions.push((n, flat.line_of(e)));
            }
        }
    }
    let mut out = Vec::new();
    for it in items(&lines) {
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
        let in_proptest = prop_regions
            .iter()
            .any(|&(a, b)| a < it.line && it.line <= b);
        let is_test = it.attrs.iter().any(|a| a == "#[test]") || in_proptest;
        let ignored = it.attrs.iter().any(|a| a.starts_with("#[ignore"));
        let not_a_test = match name {
            None => Some("no function follows the doc comment".to_string()),
            Some(_) if !is_test => Some("it is not a #[test] function".to_string()),
            Some(_) if ignored => Some("the test is #[ignore]d".to_string()),
            Some(_) => None,
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

// ------------------------------------------------------------------------------ registry

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
    /// relative to `root`.
    pub fn load(root: &Path) -> std::io::Result<Registry> {
        let mut reg = Registry::default();
        let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).to_path_buf();
        for f in files_with_ext(&root.join("spec"), "md")? {
            let text = std::fs::read_to_string(&f)?;
            reg.equations.extend(spec_labels(&rel(&f), &text));
        }
        let mut test_mod_files: Vec<PathBuf> = Vec::new();
        let mut per_file = Vec::new();
        for f in files_with_ext(&root.join("src"), "rs")? {
            let text = std::fs::read_to_string(&f)?;
            let (entries, mods) = code_entries_and_test_mods(&rel(&f), &text);
            // `#[cfg(test)] mod name;` in `dir/file.rs` lives in `dir/file/name.rs` or
            // `dir/file/name/`; in `dir/{mod,lib,main}.rs`, in `dir/name.rs` or `dir/name/`.
            let dir = f.parent().unwrap_or(root).to_path_buf();
            let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let base = if matches!(stem, "mod" | "lib" | "main") {
                dir
            } else {
                dir.join(stem)
            };
            for m in mods {
                test_mod_files.push(rel(&base.join(format!("{m}.rs"))));
                test_mod_files.push(rel(&base.join(m)));
            }
            per_file.push(entries);
        }
        reg.functions = per_file
            .into_iter()
            .flatten()
            .filter(|e| !test_mod_files.iter().any(|t| e.site.file.starts_with(t)))
            .collect();
        let tests_dir = root.join("tests");
        for f in files_with_ext(&tests_dir, "rs")? {
            let text = std::fs::read_to_string(&f)?;
            let stem = test_binary_name(&tests_dir, &f);
            reg.tests.extend(test_citations(&rel(&f), &stem, &text));
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
                problems.push(Problem::Misnamed {
                    label: e.label.clone(),
                    function: e.function.clone(),
                    expected,
                    site: e.site.clone(),
                });
            }
            if e.stub {
                problems.push(Problem::StubFunction {
                    label: e.label.clone(),
                    function: e.function.clone(),
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

#[cfg(test)]
mod lexer_sanity {
    use super::*;

    /// The lexer keeps every line and, on the crate's own sources, ends every file with all
    /// brackets closed: a comment or literal read wrongly would unbalance them.
    #[test]
    fn every_source_of_the_crate_lexes_to_balanced_brackets() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut n = 0;
        for dir in ["src", "tests", "benches"] {
            for f in files_with_ext(&root.join(dir), "rs").unwrap() {
                let text = std::fs::read_to_string(&f).unwrap();
                let lines = lex(&text);
                assert_eq!(lines.len(), text.lines().count(), "{}", f.display());
                let flat = Flat::new(&lines);
                let mut depth = 0i64;
                for c in &flat.chars {
                    match c {
                        '{' | '(' | '[' => depth += 1,
                        '}' | ')' | ']' => depth -= 1,
                        _ => {}
                    }
                    assert!(depth >= 0, "{}", f.display());
                }
                assert_eq!(depth, 0, "{}", f.display());
                n += 1;
            }
        }
        assert!(n > 40, "{n} files");
    }

    #[test]
    fn literals_and_comments_are_blanked_but_lines_kept() {
        let l = lex(
            "let a = b'\\''; let s = \"{\\\"\";\n/* { */ x /* } */\nfn f<'a>(c: char) { '{' }\n",
        );
        let code: Vec<&str> = l.iter().map(|l| l.code.as_str()).collect();
        assert_eq!(
            code,
            [
                "let a = b'  '; let s = \"   \";",
                " x ",
                "fn f<'a>(c: char) { ' ' }"
            ]
        );
    }
}

//! The Rust lexer: source text to lines of code in which comments are removed and the contents
//! of string, raw-string and character literals are blanked, so that braces, `fn` and `#[` in
//! what remains are real tokens; plus the item reader (doc lines and attributes above an item)
//! and bracket matching over the lexed text.
/// One source line after lexing.
#[derive(Debug, Default, Clone)]
pub(super) struct LexLine {
    /// The line with every comment removed and the contents of string and character literals
    /// blanked (quotes kept), so braces, `fn` and `#[` in it are real tokens.
    pub(super) code: String,
    /// The text after `///` when the line's first token is an outer doc comment.
    pub(super) doc: Option<String>,
}

pub(super) fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Splits Rust source into [`LexLine`]s. Handles nested block comments, line comments,
/// string literals (escapes, spanning lines), raw strings `r#"…"#` (with `b`/`c` prefixes),
/// character literals and lifetimes.
pub(super) fn lex(text: &str) -> Vec<LexLine> {
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
                blank(&mut lines, &mut clean, s[i]);
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
                    blank(&mut lines, &mut clean, s[i]);
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

/// One character inside a literal: a newline starts a new line (not clean: the literal goes
/// on), anything else becomes a blank.
fn blank(lines: &mut Vec<LexLine>, clean: &mut bool, c: char) {
    if c == '\n' {
        lines.push(LexLine::default());
        *clean = false;
    } else if let Some(l) = lines.last_mut() {
        l.code.push(' ');
    }
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
pub(super) struct Flat {
    pub(super) chars: Vec<char>,
    pub(super) starts: Vec<usize>,
}

impl Flat {
    pub(super) fn new(lines: &[LexLine]) -> Flat {
        let mut chars = Vec::new();
        let mut starts = Vec::with_capacity(lines.len());
        for l in lines {
            starts.push(chars.len());
            chars.extend(l.code.chars());
            chars.push('\n');
        }
        Flat { chars, starts }
    }

    pub(super) fn line_of(&self, idx: usize) -> usize {
        self.starts.partition_point(|&s| s <= idx) - 1
    }

    /// The index of the bracket closing the one at `open`.
    pub(super) fn matching(&self, open: usize) -> Option<usize> {
        matching(&self.chars, open)
    }

    /// The text of `s..e` (exclusive).
    pub(super) fn text(&self, s: usize, e: usize) -> String {
        self.chars[s..e].iter().collect()
    }

    /// The body of the item on line `line`: the indices of its `{` and matching `}`, or `None`
    /// for a body-less item (`mod name;`, `fn f();`).
    pub(super) fn body(&self, line: usize) -> Option<(usize, usize)> {
        let (open, '{') = self.body_or_semicolon(*self.starts.get(line)?)? else {
            return None;
        };
        Some((open, self.matching(open)?))
    }

    /// From `from`, the first `{` or `;` outside parentheses and brackets: the start of an
    /// item's body, or the end of a body-less item.
    pub(super) fn body_or_semicolon(&self, from: usize) -> Option<(usize, char)> {
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

/// In `chars`, the index of the bracket closing the one at `open` (any of `()[]{}`).
pub(super) fn matching(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0i64;
    for (k, &c) in chars.iter().enumerate().skip(open) {
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

/// An item (fn, mod, …) with the doc comment and attributes above it.
pub(super) struct Item {
    /// 0-based line where the preamble (doc lines and attributes) starts.
    pub(super) start: usize,
    /// The doc lines (text after `///`), in order, with their 0-based line numbers.
    pub(super) doc: Vec<(usize, String)>,
    /// Every attribute's text with whitespace removed, e.g. `#[cfg(test)]`.
    pub(super) attrs: Vec<String>,
    /// 0-based line of the item itself (first line that is neither doc, attribute nor blank).
    pub(super) line: usize,
    /// The item's first line of code, without the attributes before it on the same line.
    pub(super) text: String,
}

/// Every item that has a preamble of doc lines and/or attributes (blank lines may sit between
/// them), with the preamble read.
pub(super) fn items(lines: &[LexLine]) -> Vec<Item> {
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
            start: i,
            doc,
            attrs,
            line: j,
            text,
        });
        i = j.max(i + 1);
    }
    out
}

pub(super) fn fn_name(line: &str) -> Option<&str> {
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

#[cfg(test)]
mod lexer_sanity {
    use super::*;
    use crate::spec::registry::files_with_ext;
    use std::path::Path;

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

    /// A file may end inside a block comment or a string (a file being edited, or one that is
    /// not Rust): the lexer stops at its end instead of reading past it, and keeps every line.
    #[test]
    fn a_file_ending_inside_a_comment_or_a_string_is_read_to_its_end() {
        for text in [
            "x /* open\nstill open",
            "let s = \"open\nstill open",
            "let s = \"ends in \\",
        ] {
            assert_eq!(lex(text).len(), text.lines().count(), "{text:?}");
        }
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

    /// The code left of each literal form, exactly: raw strings (any number of `#`, with the
    /// `b` and `c` prefixes, at the file's first character), a `r` that ends an identifier
    /// (not a raw string: its `\"` is an escape), and character literals of every length
    /// (the blanks keep each literal's width).
    #[test]
    fn each_literal_form_is_blanked_to_its_exact_width() {
        for (text, code) in [
            ("r\"{\"", "r\" \""),
            ("r#\"a\"b\"#}", "r#\"   \"#}"),
            ("r##\"\"#\"##", "r##\"  \"##"),
            ("br\"\\\"{", "br\" \"{"),
            ("cr#\"}\"#;", "cr#\" \"#;"),
            ("xr\"\\\"{\"", "xr\"   \""),
            (
                "'\\x41' '\\u{1F600}' 'a' '\\n'",
                "'    ' '         ' ' ' '  '",
            ),
        ] {
            let got: Vec<String> = lex(text).into_iter().map(|l| l.code).collect();
            assert_eq!(got, [code], "{text:?}");
        }
    }

    /// A line's index from a character's offset in the joined text (each line ends in `\n`).
    #[test]
    fn line_of_maps_each_offset_to_its_line() {
        let flat = Flat::new(&lex("ab\n\ncd"));
        let lines: Vec<usize> = (0..flat.chars.len()).map(|k| flat.line_of(k)).collect();
        assert_eq!(lines, [0, 0, 0, 1, 2, 2, 2]);
    }

    /// A `;` inside brackets (an array type) is not the end of a body-less item.
    #[test]
    fn a_semicolon_in_brackets_does_not_end_an_item() {
        let flat = Flat::new(&lex("fn f(x: [u8; 3]) { y }"));
        let (open, close) = flat.body(0).unwrap();
        assert_eq!(flat.text(open + 1, close), " y ");
        let flat = Flat::new(&lex("fn f(x: [u8; 3]);"));
        assert_eq!(flat.body(0), None);
    }

    /// A file may end inside a preamble: after a doc line, or inside an attribute that never
    /// closes. The reader stops at the end of the file.
    #[test]
    fn a_file_ending_in_a_preamble_is_read_to_its_end() {
        let it = items(&lex("fn a() {}\n/// dangling"));
        assert_eq!(it.len(), 1);
        assert_eq!((it[0].start, it[0].line, it[0].text.as_str()), (1, 2, ""));
        assert_eq!(it[0].doc, [(1, " dangling".to_string())]);
        let it = items(&lex("#[cfg(\nunix"));
        assert_eq!(it.len(), 1);
        assert_eq!(it[0].attrs, ["#[cfg(unix"]);
    }

    /// A function's name after its qualifiers (an `extern` ABI's string is blanked by the
    /// lexer, quotes kept); `fn` followed by no name is none.
    #[test]
    fn fn_name_reads_past_qualifiers_and_needs_a_name() {
        for (line, name) in [
            ("pub(crate) const unsafe fn f_1<T>(x: T)", Some("f_1")),
            ("extern \" \" fn g()", Some("g")),
            ("let fn h", None),
            ("fn (x)", None),
        ] {
            assert_eq!(fn_name(line), name, "{line:?}");
        }
    }
}

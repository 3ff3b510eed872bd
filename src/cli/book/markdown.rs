//! A spec page: the markdown of `spec/*.md` as HTML, with every LaTeX formula typeset as
//! MathML (math-core) and every label line replaced by its anchor block.
//!
//! Labels are found by the same reader as the registry's ([`crate::spec::spec_labels`]),
//! so the book cannot anchor a line the conformance test does not count. A label line becomes
//! a placeholder paragraph before the markdown is parsed, and the placeholder is replaced by
//! the anchor block afterwards: the block holds source code with blank lines, which would
//! end a raw HTML block in the middle.
use crate::spec::spec_labels;
use anyhow::{Context as _, Result, bail};
use math_core::{LatexToMathML, MathCoreConfig, MathDisplay};
use pulldown_cmark::{CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd, html};
use std::collections::BTreeMap;
use std::path::Path;

/// The placeholder of label `i` of a page.
fn slot(i: usize) -> String {
    format!("GRADSPEC-LABEL-SLOT-{i}-END")
}

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

/// A heading's id as GitHub makes it (lower case, spaces to `-`, punctuation dropped), so the
/// spec's own `[…](#the-network)` links resolve.
pub fn slug(text: &str) -> String {
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// One spec page's body.
pub struct Page {
    /// The title: the text of the first `#` heading.
    pub title: String,
    /// The HTML body.
    pub body: String,
    /// The labels in page order.
    pub labels: Vec<String>,
}

/// Renders `text` (the markdown of `file`) to HTML; `anchor(label, equation)` gives the HTML
/// that replaces a label's line, `link(target)` rewrites a link target (other spec pages to
/// their HTML pages). With `absorb`, the indented Unicode equation under each label is taken
/// out of the text and handed to `anchor` (Part 1 shows it inside the label's block, where the
/// live numbers replace it); otherwise `anchor` gets no lines.
pub fn render(
    file: &Path,
    text: &str,
    anchor: &dyn Fn(&str, &[String]) -> Result<String>,
    link: &dyn Fn(&str) -> String,
    absorb: bool,
) -> Result<Page> {
    let labels = spec_labels(file, text);
    let by_line: BTreeMap<usize, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, (_, site))| (site.line, i))
        .collect();
    let mut md = String::with_capacity(text.len());
    let lines: Vec<&str> = text.lines().collect();
    let mut absorbed: Vec<Vec<String>> = vec![Vec::new(); labels.len()];
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        let Some(&k) = by_line.get(&i) else {
            md.push_str(line);
            md.push('\n');
            continue;
        };
        md.push('\n');
        md.push_str(&slot(k));
        md.push_str("\n\n");
        if absorb {
            // The equation under the label (as `backprop explain` reads it): blank lines,
            // its first indented line, and indented continuation lines starting with `=`.
            let mut j = i;
            while j < lines.len() && lines[j].trim().is_empty() {
                j += 1;
            }
            while j < lines.len()
                && lines[j].starts_with("    ")
                && (absorbed[k].is_empty() || lines[j].trim_start().starts_with('='))
            {
                absorbed[k].push(lines[j].trim().to_string());
                j += 1;
            }
            if !absorbed[k].is_empty() {
                i = j;
            }
        }
    }

    let math = LatexToMathML::new(MathCoreConfig::default())
        .map_err(|e| anyhow::anyhow!("MathML converter: {e:?}"))?;
    let opts = Options::ENABLE_TABLES | Options::ENABLE_MATH | Options::ENABLE_STRIKETHROUGH;
    let mut events: Vec<Event> = Vec::new();
    let mut title = String::new();
    let mut heading: Option<(HeadingLevel, Vec<Event>)> = None;
    for ev in Parser::new_ext(&md, opts) {
        let ev = match ev {
            Event::InlineMath(tex) | Event::DisplayMath(tex) if tex.trim().is_empty() => {
                bail!("{}: an empty formula", file.display())
            }
            Event::InlineMath(tex) => Event::InlineHtml(CowStr::from(mathml(&math, &tex, false)?)),
            Event::DisplayMath(tex) => Event::InlineHtml(CowStr::from(mathml(&math, &tex, true)?)),
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => Event::Start(Tag::Link {
                link_type,
                dest_url: CowStr::from(link(&dest_url)),
                title,
                id,
            }),
            ev => ev,
        };
        match (&mut heading, ev) {
            (None, Event::Start(Tag::Heading { level, .. })) => heading = Some((level, vec![])),
            (Some((level, inner)), Event::End(TagEnd::Heading(_))) => {
                let text = plain_text(inner);
                if title.is_empty() && *level == HeadingLevel::H1 {
                    title = text.clone();
                }
                let id = slug(&text);
                let mut h = String::new();
                html::push_html(&mut h, inner.drain(..));
                events.push(Event::Html(CowStr::from(format!(
                    "<{level} id=\"{}\"><a class=\"h\" href=\"#{}\">{h}</a></{level}>\n",
                    esc(&id),
                    esc(&id)
                ))));
                heading = None;
            }
            (Some((_, inner)), ev) => inner.push(ev),
            (None, ev) => events.push(ev),
        }
    }
    let mut body = String::new();
    html::push_html(&mut body, events.into_iter());

    for (k, (label, _)) in labels.iter().enumerate() {
        let placeholder = format!("<p>{}</p>", slot(k));
        if !body.contains(&placeholder) {
            bail!("{}: label r[{label}] was not rendered", file.display());
        }
        body = body.replacen(&placeholder, &anchor(label, &absorbed[k])?, 1);
    }
    Ok(Page {
        title,
        body,
        labels: labels.into_iter().map(|(l, _)| l).collect(),
    })
}

/// The text of a heading's events.
fn plain_text(events: &[Event]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Text(t) | Event::Code(t) => Some(t.as_ref()),
            _ => None,
        })
        .collect()
}

/// One LaTeX formula as MathML.
fn mathml(conv: &LatexToMathML, tex: &str, block: bool) -> Result<String> {
    let display = if block {
        MathDisplay::Block
    } else {
        MathDisplay::Inline
    };
    let out = conv
        .convert_with_local_state(tex, display)
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(|| format!("cannot typeset the formula `{tex}`"))?;
    Ok(out.mathml)
}

/// Part 1's Unicode equation syntax (`∂E_total/∂w5 = ∂E1/∂a_o1 · a_o1 · (1 − a_o1)`,
/// `σ(x) = 1 / (1 + e^(−x))`, `E1 = ½ · (t1 − a_o1)²`) as LaTeX, for typesetting as MathML
/// beside the Unicode block. Identifiers take their trailing digits or `_suffix` as a
/// subscript; `∂A/∂B` becomes a fraction, and so does `x / (…)`.
pub fn unicode_to_latex(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    atoms(&chars).concat()
}

/// An identifier (`a_h1`, `E_total`, `w5`) as LaTeX.
fn ident_tex(id: &str) -> String {
    let sub = |s: &str| {
        if s.chars().all(|c| c.is_ascii_digit()) {
            s.to_string()
        } else if s.len() > 2 {
            format!("\\text{{{s}}}")
        } else {
            s.to_string()
        }
    };
    match id.split_once('_') {
        Some((base, s)) => format!("{base}_{{{}}}", sub(s)),
        None => {
            let digits = id.trim_start_matches(|c: char| c.is_ascii_alphabetic());
            let base = &id[..id.len() - digits.len()];
            if digits.is_empty() {
                id.to_string()
            } else {
                format!("{base}_{{{digits}}}")
            }
        }
    }
}

/// The index of the `)` that closes the `(` at `open`, or the end.
fn closing(s: &[char], open: usize) -> usize {
    let mut depth = 0;
    for (k, &c) in s.iter().enumerate().skip(open) {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    s.len()
}

/// The LaTeX atoms of `s`, in order.
fn atoms(s: &[char]) -> Vec<String> {
    let ident_end = |from: usize| {
        let mut j = from;
        while j < s.len() && (s[j].is_ascii_alphanumeric() || s[j] == '_') {
            j += 1;
        }
        j
    };
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        match c {
            ' ' => i += 1,
            '∂' => {
                // ∂A/∂B
                let a_end = ident_end(i + 1);
                let a: String = s[i + 1..a_end].iter().collect();
                if s.get(a_end) == Some(&'/') && s.get(a_end + 1) == Some(&'∂') {
                    let b_end = ident_end(a_end + 2);
                    let b: String = s[a_end + 2..b_end].iter().collect();
                    out.push(format!(
                        "\\frac{{\\partial {}}}{{\\partial {}}}",
                        ident_tex(&a),
                        ident_tex(&b)
                    ));
                    i = b_end;
                } else {
                    out.push(format!("\\partial {}", ident_tex(&a)));
                    i = a_end;
                }
            }
            '(' => {
                let close = closing(s, i);
                let inner = atoms(&s[i + 1..close.min(s.len())]).concat();
                out.push(format!("\\left({inner}\\right)"));
                i = close + 1;
            }
            '^' => {
                if s.get(i + 1) == Some(&'(') {
                    let close = closing(s, i + 1);
                    let inner = atoms(&s[i + 2..close.min(s.len())]).concat();
                    out.push(format!("^{{{inner}}}"));
                    i = close + 1;
                } else {
                    out.push("^".into());
                    i += 1;
                }
            }
            '/' => {
                // x / (…) or x / y: a fraction of the atoms on either side.
                let num = out.pop().unwrap_or_default();
                let mut j = i + 1;
                while s.get(j) == Some(&' ') {
                    j += 1;
                }
                let den = if s.get(j) == Some(&'(') {
                    let close = closing(s, j);
                    let d = atoms(&s[j + 1..close.min(s.len())]).concat();
                    i = close + 1;
                    d
                } else {
                    let e = ident_end(j).max(j + 1).min(s.len());
                    let d = atoms(&s[j..e]).concat();
                    i = e;
                    d
                };
                out.push(format!("\\frac{{{num}}}{{{den}}}"));
            }
            c if c.is_ascii_alphanumeric() => {
                let e = ident_end(i);
                let id: String = s[i..e].iter().collect();
                if id.chars().all(|c| c.is_ascii_digit()) {
                    out.push(id);
                } else {
                    out.push(ident_tex(&id));
                }
                i = e;
            }
            _ => {
                out.push(
                    match c {
                        '·' => "\\cdot ",
                        '−' => "-",
                        '½' => "\\tfrac{1}{2}",
                        '²' => "^{2}",
                        '⁺' => "^{+}",
                        'σ' => "\\sigma ",
                        'η' => "\\eta ",
                        '=' => "=",
                        '+' => "+",
                        ',' => ",",
                        '.' => ".",
                        '-' => "-",
                        '*' => "\\ast ",
                        _ => "\\,",
                    }
                    .to_string(),
                );
                i += 1;
            }
        }
    }
    out
}

/// Typesets one Part 1 equation line as block MathML.
pub fn unicode_mathml(line: &str) -> Result<String> {
    let math = LatexToMathML::new(MathCoreConfig::default())
        .map_err(|e| anyhow::anyhow!("MathML converter: {e:?}"))?;
    mathml(&math, &unicode_to_latex(line), true)
}

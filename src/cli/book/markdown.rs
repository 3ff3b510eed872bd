//! A spec page: the markdown of `spec/*.md` as HTML, with every LaTeX formula typeset as
//! MathML (math-core) and every label line replaced by its anchor block.
//!
//! Labels are found by the same reader as the registry's ([`gradspec::spec::spec_labels`]),
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

/// Renders `text` (the markdown of `file`) to HTML; `anchor(label)` gives the HTML that
/// replaces a label's line, `link(target)` rewrites a link target (other spec pages to their
/// HTML pages).
pub fn render(
    file: &Path,
    text: &str,
    anchor: &dyn Fn(&str) -> Result<String>,
    link: &dyn Fn(&str) -> String,
) -> Result<Page> {
    let labels = spec_labels(file, text);
    let by_line: BTreeMap<usize, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, (_, site))| (site.line, i))
        .collect();
    let mut md = String::with_capacity(text.len());
    for (i, line) in text.lines().enumerate() {
        match by_line.get(&(i + 1)) {
            Some(&k) => {
                md.push('\n');
                md.push_str(&slot(k));
                md.push_str("\n\n");
            }
            None => {
                md.push_str(line);
                md.push('\n');
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
        body = body.replacen(&placeholder, &anchor(label)?, 1);
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

//! The markdown reader: labels defined in `spec/*.md`.
//!
//! A label is a line consisting of exactly `r[label]`, outside fenced code blocks (``` or
//! `~~~`, any length, with or without an info string) and indented by at most three spaces
//! (deeper lines are indented code or continuation lines).
use super::{Site, parse_label};
use std::path::Path;

/// Whether a line is indented by four columns or more, which makes it indented code or a
/// paragraph's continuation. A tab advances to the next multiple of 4, so a tab anywhere in the
/// leading whitespace reaches column 4; only the count of spaces matters otherwise.
fn indented_four(line: &str) -> bool {
    let rest = line.trim_start_matches([' ', '\t']);
    let lead = &line[..line.len() - rest.len()];
    lead.contains('\t') || lead.len() > 3
}

/// A CommonMark fence line: (fence char, run length, rest of the line after the run).
fn fence(line: &str) -> Option<(char, usize, &str)> {
    if indented_four(line) {
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
        if indented_four(line) {
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

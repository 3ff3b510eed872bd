//! The code beside each label: a function's source (its doc comment, attributes and body),
//! and one page per source file with an anchor on every line, so that a link to a file and
//! line resolves inside the book, with no server and no network.
use super::markdown::esc;
use std::collections::BTreeMap;
use std::path::Path;

/// The lines of a function whose `fn` is on 1-based line `fn_line` of `text`: the doc
/// comments and attributes above it, then the signature and body up to the brace that closes
/// it. Returns the 1-based first line and the source. Braces inside strings and comments are
/// not special-cased; the labelled functions are small and plain, and the search stops after
/// 400 lines whatever happens.
pub fn function_source(text: &str, fn_line: usize) -> Option<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let i = fn_line.checked_sub(1)?;
    if i >= lines.len() {
        return None;
    }
    let mut first = i;
    while first > 0 {
        let t = lines[first - 1].trim_start();
        if t.starts_with("///") || t.starts_with("#[") || t.starts_with("#![") {
            first -= 1;
        } else {
            break;
        }
    }
    let mut depth = 0i64;
    let mut opened = false;
    let mut last = i;
    for (k, line) in lines.iter().enumerate().skip(i).take(400) {
        let code = line.split("//").next().unwrap_or("");
        for c in code.chars() {
            match c {
                '{' => {
                    depth += 1;
                    opened = true;
                }
                '}' => depth -= 1,
                _ => {}
            }
        }
        last = k;
        if opened && depth <= 0 {
            break;
        }
    }
    Some((first + 1, lines[first..=last].join("\n")))
}

/// The book's page for source file `rel` (a path relative to the project root).
pub fn page_path(rel: &str) -> String {
    format!("code/{rel}.html")
}

/// How to get from the page `from` (a path inside the book) back to the book's root.
pub fn up(from: &str) -> String {
    "../".repeat(from.matches('/').count())
}

/// One source file as an HTML page: a line-numbered listing, each line with `id="L<n>"`.
pub fn file_page(rel: &str, text: &str, css: &str) -> String {
    let mut rows = String::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        rows.push_str(&format!(
            "<tr id=\"L{n}\"><td class=\"ln\"><a href=\"#L{n}\">{n}</a></td><td><code>{}</code></td></tr>\n",
            esc(line)
        ));
    }
    let home = up(&page_path(rel));
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>{css}</style></head><body class=\"code\">\
         <nav><a href=\"{home}index.html\">gradspec book</a> · <code>{t}</code></nav>\
         <table class=\"src\">\n{rows}</table></body></html>\n",
        t = esc(rel)
    )
}

/// The source files the book links to, read once: relative path → text.
#[derive(Default)]
pub struct Sources {
    /// Every file read so far.
    pub files: BTreeMap<String, String>,
}

impl Sources {
    /// The text of `rel` under `root`, read on first use.
    pub fn get(&mut self, root: &Path, rel: &str) -> anyhow::Result<&str> {
        if !self.files.contains_key(rel) {
            let path = root.join(rel);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            self.files.insert(rel.to_string(), text);
        }
        Ok(&self.files[rel])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_source_takes_docs_attributes_and_the_whole_body() {
        let text = "use x;\n\n/// Doc.\n#[inline]\npub fn f(a: u8) -> u8 {\n    if a > 0 {\n        a\n    } else {\n        1\n    }\n}\n\nfn g() {}\n";
        let (first, src) = function_source(text, 5).unwrap();
        assert_eq!(first, 3);
        assert!(src.starts_with("/// Doc.\n#[inline]\npub fn f"));
        assert!(src.ends_with("        1\n    }\n}"));
        assert!(function_source(text, 99).is_none());
        assert_eq!(up("code/src/a/b.rs.html"), "../../../");
    }
}

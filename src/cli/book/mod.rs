//! `gradspec book --out DIR`: the spec woven into a static web book that opens straight from
//! disk (no server, no network).
//!
//! - One page per spec (`backprop.html`, `cnn.html`) and an index. LaTeX is typeset as
//!   MathML (see [`markdown`]); the Unicode equation blocks stay as they are.
//! - Every label becomes an anchor whose `id` is the label's text, with the function that
//!   implements it (its source in a collapsible block, and a link to its file and line, see
//!   [`code`]) and the tests that verify it, from the same registry as `spec-coverage`.
//! - Part 1's numbers are live: the page's sliders feed the library's own functions, compiled
//!   to WebAssembly (the `wasm/` crate, built here with cargo) and embedded in `wasm.js`.
//! - Part 2 has a worked example (one test digit through the trained network, see [`part2`])
//!   and a canvas where the reader draws a digit for the same network code in WebAssembly.
//!
//! The book is written into a temporary folder beside `DIR` and renamed into place, so a
//! failed build leaves the previous book (or nothing) behind.
use super::data::DataDirArg;
use crate::cnn::safetensors_io;
use crate::data::{self, Split};
use crate::spec::Registry;
use anyhow::{Context as _, Result, bail};
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub mod code;
pub mod markdown;
pub mod part2;

use markdown::esc;

/// The stylesheet of every page.
/// The Part 1 workbook's file name in the book (the same name `reproduce` writes in `out/part1/`).
const PART1_XLSX: &str = super::reproduce::PART1_XLSX;
const CSS: &str = include_str!("assets/book.css");
/// The script of the two spec pages: loads the WebAssembly module and wires the controls.
const JS: &str = include_str!("assets/book.js");
/// The script of every page that, with `?overflow`, lists what is wider than its box.
const LAYOUT_JS: &str = include_str!("assets/layout.js");

/// Part 2's weights when `--weights` is not given: the default recipe's committed run (the
/// 8-epoch onecycle, seed 1), in the current folder or else in the project's.
pub const DEFAULT_WEIGHTS: &str = "records/onecycle8-seed1/best.safetensors";

/// [`DEFAULT_WEIGHTS`] in the current folder if it is there, else in the project's.
fn default_weights() -> PathBuf {
    if Path::new(DEFAULT_WEIGHTS).is_file() {
        PathBuf::from(DEFAULT_WEIGHTS)
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_WEIGHTS)
    }
}

// No `///` doc here: clap would turn it into --help text.
#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct BookArgs {
    /// Output folder (replaced as a whole when the book is complete).
    #[arg(long, default_value = "out/book")]
    pub out: PathBuf,
    /// Trained weights for Part 2's worked example and draw-a-digit canvas [default:
    /// records/onecycle8-seed1/best.safetensors, in the current folder or else the project's].
    #[arg(long, value_name = "FILE")]
    pub weights: Option<PathBuf>,
    /// The training run whose charts (curves.png, confusion.png) and per-epoch table
    /// (metrics.csv) Part 2 shows [default: the folder of --weights].
    #[arg(long, value_name = "DIR")]
    pub run: Option<PathBuf>,
    /// Index of the test-set digit of the worked example.
    #[arg(long, default_value_t = 0)]
    pub digit: usize,
    #[command(flatten)]
    pub data: DataDirArg,
}

/// The project's source tree: the book weaves `spec/`, `src/` and `tests/` together and
/// builds `wasm/`, so it needs them on disk.
fn project_root() -> Result<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for part in ["spec", "src", "tests", "wasm/Cargo.toml"] {
        if !root.join(part).exists() {
            bail!(
                "book: {} is missing: the book is built from the gradspec source tree it was \
                 compiled in; run it from a clone (`cargo run --release -- book`)",
                root.join(part).display()
            );
        }
    }
    Ok(root)
}

/// `gradspec book`.
pub fn run(a: BookArgs) -> Result<()> {
    let root = project_root()?;
    let weights_path = a.weights.clone().unwrap_or_else(default_weights);
    let run_dir = a.run.clone().unwrap_or_else(|| {
        weights_path
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf()
    });
    if a.out.exists() && !a.out.is_dir() {
        bail!("--out {}: exists and is not a folder", a.out.display());
    }
    let weights = std::fs::read(&weights_path)
        .with_context(|| format!("--weights {}", weights_path.display()))?;
    safetensors_io::from_bytes(&weights, &weights_path.display().to_string())?;
    let dir = super::data::ensure_mnist(&a.data)?;
    let test = data::load_split(&dir, Split::Test)?;
    if a.digit >= test.len() {
        bail!(
            "--digit {}: the test set has {} digits",
            a.digit,
            test.len()
        );
    }

    eprintln!("book: building the WebAssembly module (wasm/, cargo, wasm32-unknown-unknown)");
    let wasm = build_wasm(&root)?;
    eprintln!("book: WebAssembly module {} KiB", wasm.len() / 1024);

    let parent = match a.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("--out {}: cannot create its parent", a.out.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".book-")
        .tempdir_in(&parent)
        .with_context(|| format!("--out {}: cannot write beside it", a.out.display()))?;
    let files = Book {
        root: &root,
        weights: &weights,
        weights_name: &weights_path,
        run_dir: &run_dir,
        wasm: &wasm,
        digit: (a.digit, test.image(a.digit), test.labels[a.digit]),
    }
    .files()?;
    for (rel, bytes) in &files {
        let path = tmp.path().join(rel);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    replace_dir(tmp, &a.out)?;
    println!(
        "book: {} files in {}; open {}",
        files.len(),
        a.out.display(),
        a.out.join("index.html").display()
    );
    Ok(())
}

/// Renames the finished book `tmp` to `out`, moving an older book aside first and deleting
/// it afterwards.
fn replace_dir(tmp: tempfile::TempDir, out: &Path) -> Result<()> {
    let staged = tmp.keep();
    let old = out.with_extension(format!("old-{}", std::process::id()));
    let had_old = out.exists();
    if had_old {
        std::fs::rename(out, &old).with_context(|| format!("--out {}", out.display()))?;
    }
    if let Err(e) = std::fs::rename(&staged, out) {
        if had_old {
            let _ = std::fs::rename(&old, out);
        }
        let _ = std::fs::remove_dir_all(&staged);
        return Err(e).with_context(|| format!("--out {}", out.display()));
    }
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(())
}

/// Builds `wasm/` for wasm32-unknown-unknown (installing the target with rustup when it is
/// missing) and returns the module's bytes.
pub fn build_wasm(root: &Path) -> Result<Vec<u8>> {
    const TARGET: &str = "wasm32-unknown-unknown";
    // Without rustup, try the build, and say what to install if it fails.
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == TARGET)
        });
    if installed == Some(false) {
        eprintln!("book: installing the {TARGET} target (rustup target add {TARGET})");
        let ok = Command::new("rustup")
            .args(["target", "add", TARGET])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            bail!(
                "book: the {TARGET} target is missing and `rustup target add {TARGET}` failed; \
                 run it by hand"
            );
        }
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = root.join("target").join("book-wasm");
    let out = Command::new(cargo)
        .args(["build", "--release", "--target", TARGET])
        .arg("--manifest-path")
        .arg(root.join("wasm").join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // The outer build's flags (say, -C target-cpu=native) are not for wasm32.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .context("book: cannot run cargo to build the WebAssembly module")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("can't find crate for `core`") || err.contains("can't find crate for `std`")
        {
            bail!("book: the {TARGET} target is not installed: run `rustup target add {TARGET}`");
        }
        let first = err
            .lines()
            .find(|l| l.starts_with("error"))
            .unwrap_or("cargo failed");
        bail!(
            "book: building the WebAssembly module failed ({first}); see the whole output with \
             `cargo build --release --target {TARGET} --manifest-path {}`",
            root.join("wasm").join("Cargo.toml").display()
        );
    }
    let path = target_dir
        .join(TARGET)
        .join("release")
        .join("gradspec_wasm.wasm");
    std::fs::read(&path).with_context(|| format!("book: {}", path.display()))
}

/// Standard base64 (RFC 4648, with padding), for embedding binaries in scripts.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                s.push(A[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Everything a book is made from.
struct Book<'a> {
    root: &'a Path,
    weights: &'a [u8],
    weights_name: &'a Path,
    run_dir: &'a Path,
    wasm: &'a [u8],
    /// The worked example: test-set index, pixels, label.
    digit: (usize, &'a [u8], u8),
}

/// The two spec pages: file, page name, title in the navigation.
const PAGES: [(&str, &str, &str); 2] = [
    (
        "spec/backprop.md",
        "backprop.html",
        "Part 1 — backpropagation by hand",
    ),
    ("spec/cnn.md", "cnn.html", "Part 2 — the MNIST CNN"),
];

/// A whole HTML page.
fn page(title: &str, body_class: &str, body: &str, scripts: &[&str]) -> String {
    let nav: String = std::iter::once(("index.html", "Contents"))
        .chain(PAGES.iter().map(|(_, p, t)| (*p, *t)))
        .map(|(href, t)| format!("<a href=\"{href}\">{}</a>", esc(t)))
        .collect::<Vec<_>>()
        .join(" · ");
    let scripts: String = scripts
        .iter()
        .chain(std::iter::once(&"layout.js"))
        .map(|s| format!("<script src=\"{s}\"></script>\n"))
        .collect();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><link rel=\"stylesheet\" href=\"book.css\"></head>\n\
         <body class=\"{body_class}\"><nav class=\"top\">{nav}</nav>\n\
         <div id=\"js-errors\" hidden></div>\n{body}\n{scripts}</body></html>\n",
        t = esc(title)
    )
}

impl Book<'_> {
    /// Every file of the book: path inside the book → bytes.
    fn files(&self) -> Result<BTreeMap<String, Vec<u8>>> {
        let reg = Registry::load(self.root).context("book: reading the registry")?;
        let problems = reg.check();
        if !problems.is_empty() {
            bail!(
                "book: the spec registry has {} problem(s), first: {} (see `gradspec spec-coverage`)",
                problems.len(),
                problems[0]
            );
        }
        let mut sources = code::Sources::default();
        let mut files = BTreeMap::new();
        // The source spreadsheet as a spreadsheet: the six rates' sheets of live formulas
        // (`gradspec backprop xlsx`), linked from the Part 1 page.
        files.insert(
            PART1_XLSX.to_string(),
            crate::backprop::xlsx::workbook_bytes(
                crate::backprop::State::spreadsheet(),
                &crate::backprop::sweep::DEFAULT_LRS,
                crate::backprop::sweep::DEFAULT_ITERATIONS,
                crate::backprop::xlsx::XlsxOptions::default(),
            )?,
        );
        let mut index_rows = String::new();
        for (spec, name, _) in PAGES {
            let mut text = sources.get(self.root, spec)?.to_string();
            if name == "cnn.html" {
                text = conventions_to_appendix(&text);
            }
            let live = name == "backprop.html";
            let anchor = |label: &str, eq: &[String]| -> Result<String> {
                anchor_block(label, eq, &reg, self.root, live)
            };
            let link = |target: &str| -> String {
                let (path, frag) = target.split_once('#').unwrap_or((target, ""));
                let path = PAGES
                    .iter()
                    .find(|(s, _, _)| Path::new(s).file_name() == Some(path.as_ref()))
                    .map_or(path.to_string(), |(_, p, _)| p.to_string());
                if frag.is_empty() {
                    path
                } else {
                    format!("{path}#{frag}")
                }
            };
            let p = markdown::render(Path::new(spec), &text, &anchor, &link, live)?;
            let mut body = String::new();
            if live {
                body.push_str(&part1_controls());
            }
            let p = if live {
                let mut p = p;
                let at = p.body.find("<h2").unwrap_or(0);
                p.body.insert_str(at, NETWORK_SVG);
                p
            } else {
                p
            };
            let mut main = p.body.clone();
            if name == "cnn.html" {
                let start = part2::start_here(self.run_dir)?;
                let at = main.find("<h2 id=\"the-network\">").unwrap_or(0);
                main.insert_str(at, &start);
                main = main.replacen(
                    ">Conventions</a></h2>",
                    ">Appendix: conventions and tolerance presets</a></h2>",
                    1,
                );
            }
            body.push_str(&format!("<main>{main}"));
            if name == "cnn.html" {
                let (index, pixels, label) = self.digit;
                let wn = part2::shown_path(self.weights_name);
                let w =
                    part2::worked_example(self.weights, index, pixels, label, self.run_dir, &wn)?;
                body.push_str(&w.html);
                files.extend(w.files);
                body.push_str(part2::DRAW_HTML);
            }
            body.push_str("</main>");
            let scripts: &[&str] = if live {
                &["wasm.js", "book.js"]
            } else {
                &["wasm.js", "weights.js", "book.js"]
            };
            let class = if live { "part1" } else { "part2" };
            files.insert(
                name.to_string(),
                page(&p.title, class, &body, scripts).into_bytes(),
            );
            index_rows.push_str(&index_section(name, &p.title, &p.labels, &reg));
        }
        // A page for every file a label links to.
        let mut rels: Vec<String> = reg.functions.iter().map(|f| f.site.file_str()).collect();
        rels.extend(reg.tests.iter().map(|t| t.site.file_str()));
        rels.sort();
        rels.dedup();
        for rel in rels {
            let text = sources.get(self.root, &rel)?.to_string();
            files.insert(
                code::page_path(&rel),
                code::file_page(&rel, &text, CSS).into_bytes(),
            );
        }
        let example = anchor_block("cnn.relu.forward", &[], &reg, self.root, false)?;
        let index = format!(
            "<main><h1>gradspec — backpropagation, derived and checked</h1>\
             <p>This book teaches backpropagation twice. Part 1 works it out by hand on the \
             smallest network that shows every step: two inputs, two sigmoid hidden units, \
             two sigmoid outputs. Part 2 derives it for every layer of a real convolutional \
             network, 16,562 parameters that read handwritten digits (MNIST) with 99.4 % \
             accuracy. Each equation is implemented by one Rust function and checked by \
             tests, and the book shows all three side by side.</p>\
             <h2 id=\"doors\">Three ways in</h2><div class=\"doors\">\
             <a class=\"door\" href=\"backprop.html\"><strong>Part 1: backpropagation by \
             hand</strong><span>The 2-2-2 network, drawn, with sliders for the learning \
             rate, the inputs, the targets and the eight weights. Every equation shows its \
             numbers, recomputed in your browser as you move them.</span></a>\
             <a class=\"door\" href=\"cnn.html\"><strong>Part 2: the MNIST CNN</strong>\
             <span>What each layer is for, how far each one sees, how training went epoch \
             by epoch, then every layer's forward and backward pass, and one test digit \
             followed through the trained network.</span></a>\
             <a class=\"door\" href=\"cnn.html#draw\"><strong>Draw a digit</strong>\
             <span>Write a digit with the mouse or a finger; the trained network reads it \
             in your browser and shows what each layer saw.</span></a></div>\
             <h2 id=\"label-blocks\">How to read a label block</h2>\
             <p>Every equation of the two derivations sits under a label such as \
             <code>r[cnn.relu.forward]</code>. Below it the book puts a block like this one \
             (this is the real block of the ReLU's forward pass):</p>{example}\
             <ul class=\"howto\"><li>The label's name links to itself, so you can share \
             it.</li><li><em>implemented by</em> names the one function that cites the \
             label in the first line of its doc comment; the link opens its file at that \
             line, and <em>source of …</em> unfolds the function.</li><li><em>verified \
             by N tests</em> lists every test whose doc comment says \
             <code>Verifies r[…]</code>; a test in <code>tests/spec_conformance.rs</code> \
             fails if a label has no function, two functions, or a function with no \
             label.</li><li>In Part 1 a green block under the equation shows its numbers \
             at the current slider settings, computed by that very function compiled to \
             WebAssembly.</li></ul>\
             <details class=\"coverage\" id=\"coverage\"><summary>The coverage table: \
             every label, its function and the number of tests that cite it (the same \
             registry as <code>gradspec spec-coverage</code>)</summary>{index_rows}\
             </details></main>"
        );
        files.insert(
            "index.html".into(),
            page("gradspec book", "index", &index, &[]).into_bytes(),
        );
        files.insert("book.css".into(), CSS.as_bytes().to_vec());
        files.insert("book.js".into(), JS.as_bytes().to_vec());
        files.insert("layout.js".into(), LAYOUT_JS.as_bytes().to_vec());
        files.insert(
            "wasm.js".into(),
            format!("window.GRADSPEC_WASM = \"{}\";\n", base64(self.wasm)).into_bytes(),
        );
        files.insert(
            "weights.js".into(),
            format!(
                "// {}\nwindow.GRADSPEC_WEIGHTS = \"{}\";\n",
                self.weights_name.display(),
                base64(self.weights)
            )
            .into_bytes(),
        );
        Ok(files)
    }
}

/// `spec/cnn.md` with its "## Conventions" section (up to the next `## ` heading) moved to
/// the end, where the page calls it an appendix: a learner meets the network first. The text
/// is unchanged when there is no such section.
fn conventions_to_appendix(text: &str) -> String {
    let Some(from) = text.find("\n## Conventions\n") else {
        return text.to_string();
    };
    let Some(len) = text[from + 1..].find("\n## ") else {
        return text.to_string();
    };
    let to = from + 1 + len + 1;
    let section = text[from + 1..to]
        .trim_end()
        .trim_end_matches("---")
        .trim_end();
    format!(
        "{}{}\n\n---\n\n{section}\n",
        &text[..from + 1],
        text[to..].trim_end()
    )
}

/// The index's section for one page: its labels, each with its function and test count.
fn index_section(page: &str, title: &str, labels: &[String], reg: &Registry) -> String {
    let by_label = reg.tests_by_label();
    let rows: String = labels
        .iter()
        .map(|l| {
            let f = reg
                .functions
                .iter()
                .find(|f| &f.label == l)
                .map_or(String::new(), |f| format!("<code>{}</code>", esc(&f.function)));
            let n = by_label.get(l.as_str()).map_or(0, |t| t.len());
            format!(
                "<tr><td><a href=\"{page}#{id}\"><code>r[{id}]</code></a></td><td>{f}</td><td>{n}</td></tr>",
                id = esc(l)
            )
        })
        .collect();
    format!(
        "<h2><a href=\"{page}\">{}</a></h2><table class=\"index\"><tr><th>label</th>\
         <th>function</th><th>tests</th></tr>{rows}</table>",
        esc(title)
    )
}

/// The anchor block of one label: its id, the function with its source and a link to its
/// file and line, the tests that cite it, and on Part 1's page (`live`) the equation `eq`
/// typeset as MathML and in Unicode, which the live numbers replace with the equation and its
/// numbers (`backprop explain`'s block for the label).
fn anchor_block(
    label: &str,
    eq: &[String],
    reg: &Registry,
    root: &Path,
    live: bool,
) -> Result<String> {
    let id = esc(label);
    let mut h = format!(
        "<section class=\"label\" id=\"{id}\"><div class=\"lhead\"><a class=\"lname\" href=\"#{id}\">r[{id}]</a>"
    );
    if let Some(f) = reg.functions.iter().find(|f| f.label == label) {
        let rel = f.site.file_str();
        let href = format!("{}#L{}", code::page_path(&rel), f.site.line);
        h.push_str(&format!(
            " · implemented by <a href=\"{href}\"><code>{}</code></a> <span class=\"site\">{}:{}</span>",
            esc(&f.function),
            esc(&rel),
            f.site.line
        ));
        let src = std::fs::read_to_string(root.join(&rel))
            .ok()
            .and_then(|t| code::function_source(&t, f.site.line));
        h.push_str("</div>");
        if let Some((first, src)) = src {
            h.push_str(&format!(
                "<details class=\"src\"><summary>source of <code>{}</code> ({}:{first})</summary><pre><code>{}</code></pre></details>",
                esc(&f.function),
                esc(&rel),
                esc(&src)
            ));
        }
    } else {
        h.push_str("</div>");
    }
    let tests: Vec<_> = reg
        .tests
        .iter()
        .filter(|t| t.label == label && t.not_a_test.is_none())
        .collect();
    h.push_str(&format!(
        "<details class=\"tests\"><summary>verified by {} test{}</summary><ul>",
        tests.len(),
        if tests.len() == 1 { "" } else { "s" }
    ));
    for t in tests {
        let rel = t.site.file_str();
        h.push_str(&format!(
            "<li><a href=\"{}#L{}\"><code>{}</code></a> <span class=\"site\">{}:{}</span></li>",
            code::page_path(&rel),
            t.site.line,
            esc(&t.test),
            esc(&rel),
            t.site.line
        ));
    }
    h.push_str("</ul></details>");
    if live {
        if eq.is_empty() {
            bail!("r[{label}]: no equation under the label");
        }
        h.push_str("<div class=\"typeset\">");
        for line in eq {
            let m = markdown::unicode_mathml(line).with_context(|| format!("r[{label}]"))?;
            h.push_str(&m);
        }
        h.push_str("</div>");
        h.push_str(&format!(
            "<pre class=\"live\" data-label=\"{id}\" title=\"computed in your browser by the WebAssembly build of the labelled functions\">{}</pre>",
            esc(&eq.join("\n"))
        ));
    }
    h.push_str("</section>\n");
    Ok(h)
}

/// Part 1's network, drawn: inputs i1 i2, hidden h1 h2, outputs o1 o2, and w1 … w8 on their
/// edges (the script writes the current values into the `net-*` labels).
const NETWORK_SVG: &str = r##"<figure class="net" id="network-figure"><svg viewBox="0 0 640 300" width="640" height="300" role="img" aria-label="the 2-2-2 network: inputs i1 i2, hidden h1 h2, outputs o1 o2, weights w1 to w8 on their edges">
<g stroke="#888" stroke-width="1.5">
<line x1="90" y1="70" x2="300" y2="70"/><line x1="90" y1="70" x2="300" y2="230"/>
<line x1="90" y1="230" x2="300" y2="70"/><line x1="90" y1="230" x2="300" y2="230"/>
<line x1="340" y1="70" x2="550" y2="70"/><line x1="340" y1="70" x2="550" y2="230"/>
<line x1="340" y1="230" x2="550" y2="70"/><line x1="340" y1="230" x2="550" y2="230"/>
</g>
<g fill="#fff" stroke="#0b5cad" stroke-width="2">
<circle cx="70" cy="70" r="22"/><circle cx="70" cy="230" r="22"/>
<circle cx="320" cy="70" r="22"/><circle cx="320" cy="230" r="22"/>
<circle cx="570" cy="70" r="22"/><circle cx="570" cy="230" r="22"/>
</g>
<g font-family="sans-serif" font-size="15" text-anchor="middle" dominant-baseline="central">
<text x="70" y="70">i1</text><text x="70" y="230">i2</text>
<text x="320" y="70">h1</text><text x="320" y="230">h2</text>
<text x="570" y="70">o1</text><text x="570" y="230">o2</text>
</g>
<g font-family="sans-serif" font-size="13" text-anchor="middle" fill="#1d1d1f" stroke="#fff" stroke-width="4" paint-order="stroke">
<text id="net-i1" x="70" y="30">i1</text><text id="net-i2" x="70" y="275">i2</text>
<text id="net-w1" x="190" y="60">w1</text><text id="net-w2" x="150" y="196">w2</text>
<text id="net-w3" x="150" y="112">w3</text><text id="net-w4" x="190" y="252">w4</text>
<text id="net-w5" x="440" y="60">w5</text><text id="net-w6" x="400" y="196">w6</text>
<text id="net-w7" x="400" y="112">w7</text><text id="net-w8" x="440" y="252">w8</text>
</g></svg><figcaption>The network of Part 1, with the weights of the iteration the sliders show (h1 = w1·i1 + w2·i2, h2 = w3·i1 + w4·i2, o1 = w5·a_h1 + w6·a_h2, o2 = w7·a_h1 + w8·a_h2; each unit applies the sigmoid).</figcaption></figure>"##;

/// The sliders of Part 1: learning rate, inputs, targets, the eight starting weights and the
/// iteration. `data-start` holds the spreadsheet's value.
fn part1_controls() -> String {
    let s = crate::backprop::State::<f64>::spreadsheet();
    let w = s.w.to_array();
    let mut rows: Vec<(String, f64, f64, f64, f64)> = vec![
        ("lr".into(), 0.5, 0.01, 3.0, 0.01),
        ("iteration".into(), 0.0, 0.0, 99.0, 1.0),
        ("i1".into(), s.i1, 0.0, 1.0, 0.01),
        ("i2".into(), s.i2, 0.0, 1.0, 0.01),
        ("t1".into(), s.t1, 0.0, 1.0, 0.01),
        ("t2".into(), s.t2, 0.0, 1.0, 0.01),
    ];
    for (k, v) in w.iter().enumerate() {
        rows.push((format!("w{}", k + 1), *v, -2.0, 2.0, 0.01));
    }
    let inputs: String = rows
        .iter()
        .map(|(name, start, lo, hi, step)| {
            let label = match name.as_str() {
                "lr" => "η".to_string(),
                n => n.to_string(),
            };
            format!(
                "<label><span>{label}</span><input type=\"range\" id=\"s-{name}\" data-name=\"{name}\" \
                 min=\"{lo}\" max=\"{hi}\" step=\"{step}\" value=\"{start}\" data-start=\"{start}\">\
                 <output id=\"o-{name}\">{start}</output></label>"
            )
        })
        .collect();
    format!(
        "<aside id=\"controls\"><h2>Live numbers</h2><p>Every block below the equations is \
         computed in your browser by the functions the labels cite, compiled to WebAssembly. \
         The page opens at the source spreadsheet's start (η = 0.5, iteration 0).</p>\
         <p>The spreadsheet itself, one sheet per rate with every cell a live formula: \
         <a href=\"{PART1_XLSX}\" download>{PART1_XLSX}</a> (change η or a weight in it \
         and watch the loss recompute).</p>\
         <p id=\"settings\" class=\"settings\"></p>{inputs}\
         <button id=\"reset\" type=\"button\">spreadsheet start</button>\
         <p id=\"e-total\"></p><canvas id=\"loss\" width=\"300\" height=\"180\"></canvas>\
         <p class=\"cap\">E_total over 100 iterations at the chosen settings (dot: the \
         iteration shown)</p><canvas id=\"sweep\" width=\"300\" height=\"200\"></canvas>\
         <p class=\"cap\">The source's six learning rates from the spreadsheet's start, \
         together</p><canvas id=\"sweep-one\" width=\"300\" height=\"180\"></canvas>\
         <p class=\"cap\">One of them on its own axes: <select id=\"sweep-rate\" \
         aria-label=\"learning rate\"></select></p>\
         <p id=\"bp-error\" class=\"error\"></p></aside>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }
}

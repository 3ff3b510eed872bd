//! `gradspec book`, opened in a real browser (headless Chromium).
//!
//! The book is built once per test run (into `$CARGO_TARGET_TMPDIR/book-test/book`, kept for
//! a person to look at, with the screenshots beside it), then every page is opened with
//! `chromium --headless --dump-dom`, which prints the DOM after the page's scripts have run:
//! - every label of the registry has its anchor (`id` = the label's text), with its function
//!   and every test that cites it;
//! - MathML is present, and no raw `$$` or `\frac` is left;
//! - every local link and image resolves (files, and the `id` of a link's fragment);
//! - the page logs no JavaScript error (the page's own error trap, and Chromium's console log);
//! - the WebAssembly module runs: Part 1's sliders at the spreadsheet's start, and at another
//!   setting, give `gradspec backprop explain`'s blocks exactly; a test digit drawn onto Part
//!   2's canvas gives the prediction of `gradspec mnist predict` on the same picture;
//! - a screenshot of every page is not blank.
//!
//! Needs Chromium (`.ci/run` installs it) and MNIST's test set (the worked example); without
//! them the tests print SKIPPED, unless `GRADSPEC_REQUIRE_CHROMIUM` or `GRADSPEC_REQUIRE_MNIST`
//! is set, as in CI.
use gradspec::data::{self, Split};
use gradspec::spec::Registry;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const BIN: &str = env!("CARGO_BIN_EXE_gradspec");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn skip(why: &str, require: &str) -> Option<()> {
    assert!(
        std::env::var_os(require).is_none(),
        "{require} is set but {why}"
    );
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
    None
}

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GRADSPEC_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(PathBuf::from)
}

struct Setup {
    chromium: PathBuf,
    book: PathBuf,
    shots: PathBuf,
}

/// Builds the book once per test binary; `None` (after a SKIPPED line) when Chromium or
/// MNIST is missing.
fn setup() -> Option<&'static Setup> {
    static S: OnceLock<Option<Setup>> = OnceLock::new();
    S.get_or_init(|| {
        let Some(chromium) = chromium() else {
            return skip(
                "headless Chromium not found (apt-get install chromium)",
                "GRADSPEC_REQUIRE_CHROMIUM",
            )
            .map(|_| unreachable!());
        };
        let dir = data::resolve_dir(None);
        if !data::missing_files(&dir, &data::FILES).is_empty() {
            return skip(
                &format!("full MNIST not present at {}", dir.display()),
                "GRADSPEC_REQUIRE_MNIST",
            )
            .map(|_| unreachable!());
        }
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("book-test");
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let book = base.join("book");
        let out = Command::new(BIN)
            .args(["book", "--out"])
            .arg(&book)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "gradspec book failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let shots = base.join("screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Some(Setup {
            chromium,
            book,
            shots,
        })
    })
    .as_ref()
}

/// Opens `page` (with `query`) and returns the DOM after its scripts ran, and Chromium's
/// console lines.
fn dom(s: &Setup, page: &str, query: &str) -> (String, Vec<String>) {
    dom_at(s, page, query, "1280,900")
}

/// [`dom`] in a window of `size` (`"W,H"` in CSS pixels).
fn dom_at(s: &Setup, page: &str, query: &str, size: &str) -> (String, Vec<String>) {
    let url = format!("file://{}{query}", s.book.join(page).display());
    let out = Command::new(&s.chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
            "--hide-scrollbars",
            "--dump-dom",
        ])
        .arg(format!("--window-size={size}"))
        .arg(&url)
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium failed on {url}");
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("CONSOLE"))
        .map(String::from)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

/// The JavaScript errors a page reported: its own trap (`#js-errors`, `data-js-errors`) and
/// Chromium's console.
fn js_errors(dom: &str, console: &[String]) -> Vec<String> {
    let mut errs: Vec<String> = console
        .iter()
        .filter(|l| l.contains("Uncaught") || l.contains("Error"))
        .cloned()
        .collect();
    if dom.contains("data-js-errors=") {
        errs.push(between(dom, "<div id=\"js-errors\"", "</div>").unwrap_or_default());
    }
    errs
}

fn between(s: &str, a: &str, b: &str) -> Option<String> {
    let i = s.find(a)? + a.len();
    let j = s[i..].find(b)? + i;
    Some(s[i..j].to_string())
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// The values of every `attr="…"` in `html`.
fn attrs<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let pat = format!(" {attr}=\"");
    html.match_indices(&pat)
        .filter_map(|(i, _)| {
            let from = i + pat.len();
            html[from..].find('"').map(|j| &html[from..from + j])
        })
        .collect()
}

/// Every local `href`/`src` of `page` resolves: the file exists, and a fragment names an `id`
/// in it.
fn check_links(s: &Setup, page: &str, dom: &str) {
    let dir = s.book.join(page);
    let dir = dir.parent().unwrap();
    let mut checked = 0;
    for target in attrs(dom, "href").into_iter().chain(attrs(dom, "src")) {
        let target = unescape(target);
        if target.starts_with("http://")
            || target.starts_with("https://")
            || target.starts_with("data:")
            || target.starts_with("mailto:")
        {
            continue;
        }
        let (path, frag) = target.split_once('#').unwrap_or((&target, ""));
        let text = if path.is_empty() {
            dom.to_string()
        } else {
            let file = dir.join(path);
            assert!(file.is_file(), "{page}: link {target} does not resolve");
            if frag.is_empty() {
                checked += 1;
                continue;
            }
            std::fs::read_to_string(&file).unwrap()
        };
        if !frag.is_empty() {
            assert!(
                text.contains(&format!("id=\"{frag}\"")),
                "{page}: link {target}: no id \"{frag}\""
            );
        }
        checked += 1;
    }
    assert!(checked > 0, "{page}: no links at all");
}

/// Index, Part 1 and Part 2 pages: anchors for every label (with function and tests), MathML,
/// no raw LaTeX, links, no JavaScript errors.
fn check_page(page: &str, spec: Option<&str>) {
    let Some(s) = setup() else { return };
    let (dom, console) = dom(s, page, "");
    let errs = js_errors(&dom, &console);
    assert!(errs.is_empty(), "{page}: JavaScript errors: {errs:?}");
    check_links(s, page, &dom);
    let Some(spec) = spec else { return };
    assert!(dom.contains("<math"), "{page}: no MathML");
    let written = std::fs::read_to_string(s.book.join(page)).unwrap();
    for raw in ["$$", "\\frac", "\\partial"] {
        assert!(
            !dom.contains(raw) && !written.contains(raw),
            "{page}: raw LaTeX {raw} left"
        );
    }
    let reg = Registry::load(&root()).unwrap();
    let by_label = reg.tests_by_label();
    let labels: Vec<_> = reg
        .equations
        .iter()
        .filter(|(_, site)| site.file_str() == spec)
        .collect();
    assert!(!labels.is_empty());
    for (label, _) in labels {
        let open = format!("<section class=\"label\" id=\"{label}\">");
        let section = between(&dom, &open, "</section>")
            .unwrap_or_else(|| panic!("{page}: no anchor for r[{label}]"));
        let f = reg.functions.iter().find(|f| &f.label == label).unwrap();
        assert!(
            section.contains(&format!("<code>{}</code>", f.function))
                && section.contains(&format!("#L{}", f.site.line)),
            "{page}: r[{label}] does not show {} at its line",
            f.function
        );
        for t in &by_label[label.as_str()] {
            assert!(
                section.contains(&format!("<code>{t}</code>")),
                "{page}: r[{label}] does not list its test {t}"
            );
        }
    }
}

#[test]
fn index_page_opens_without_errors_and_its_links_resolve() {
    check_page("index.html", None);
}

#[test]
fn part1_page_has_every_label_mathml_and_working_links() {
    check_page("backprop.html", Some("spec/backprop.md"));
}

#[test]
fn part2_page_has_every_label_mathml_and_working_links() {
    check_page("cnn.html", Some("spec/cnn.md"));
}

/// `gradspec backprop explain`'s block for every label: the tagged equation line and the
/// indented lines under it.
fn explain_blocks(args: &[&str]) -> Vec<(String, String)> {
    let out = Command::new(BIN)
        .args(["backprop", "explain"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut blocks: Vec<(String, String)> = Vec::new();
    let mut open = false;
    for line in text.lines() {
        let tag = line
            .trim_end()
            .rsplit_once("    [")
            .and_then(|(_, t)| t.strip_suffix(']'));
        if let Some(label) = tag.filter(|t| t.starts_with("bp.")) {
            blocks.push((label.to_string(), line.to_string()));
            open = true;
        } else if open && line.starts_with("    ") {
            let b = &mut blocks.last_mut().unwrap().1;
            b.push('\n');
            b.push_str(line);
        } else {
            open = false;
        }
    }
    blocks
}

/// The live blocks of the Part 1 page after its scripts ran with `query`.
fn live_blocks(s: &Setup, query: &str) -> Vec<(String, String)> {
    let (dom, console) = dom(s, "backprop.html", query);
    let errs = js_errors(&dom, &console);
    assert!(errs.is_empty(), "JavaScript errors: {errs:?}");
    assert!(
        dom.contains("data-selftest=\"part1-done\""),
        "the self-test did not finish"
    );
    dom.match_indices("<pre class=\"live\" data-label=\"")
        .map(|(i, m)| {
            let rest = &dom[i + m.len()..];
            let label = &rest[..rest.find('"').unwrap()];
            let body = &rest[rest.find('>').unwrap() + 1..rest.find("</pre>").unwrap()];
            (label.to_string(), unescape(body))
        })
        .collect()
}

fn assert_same_blocks(page: Vec<(String, String)>, cli: Vec<(String, String)>) {
    assert_eq!(page.len(), cli.len(), "number of labelled blocks");
    // Every label of spec/backprop.md but the two with no single quantity on the left.
    let labels = Registry::load(&root()).unwrap().equations;
    let part1 = labels.iter().filter(|(l, _)| l.starts_with("bp.")).count();
    assert_eq!(page.len(), part1, "a live block for every Part 1 label");
    for ((pl, pb), (cl, cb)) in page.iter().zip(&cli) {
        assert_eq!(pl, cl);
        assert_eq!(
            pb.trim_end(),
            cb.trim_end(),
            "r[{pl}]: page vs backprop explain"
        );
    }
}

/// Verifies that the WebAssembly build of the labelled functions, driven by the page's
/// sliders, prints what `backprop explain` prints: at the spreadsheet's start, and at a
/// setting where every slider has moved.
#[test]
fn part1_sliders_give_backprop_explains_numbers() {
    let Some(s) = setup() else { return };
    assert_same_blocks(live_blocks(s, "?selftest"), explain_blocks(&[]));
    let moved: [(&str, &str); 14] = [
        ("lr", "1.2"),
        ("iteration", "7"),
        ("i1", "0.3"),
        ("i2", "0.61"),
        ("t1", "0.01"),
        ("t2", "0.99"),
        ("w1", "-0.5"),
        ("w2", "0.7"),
        ("w3", "1.25"),
        ("w4", "-1.1"),
        ("w5", "0.09"),
        ("w6", "-0.45"),
        ("w7", "1.5"),
        ("w8", "-2"),
    ];
    let query: String = moved.iter().map(|(k, v)| format!("&{k}={v}")).collect();
    let args: Vec<String> = moved
        .iter()
        .flat_map(|(k, v)| [format!("--{k}"), v.to_string()])
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_same_blocks(
        live_blocks(s, &format!("?selftest{query}")),
        explain_blocks(&args),
    );
}

/// A test digit drawn onto the canvas (dark on light, each pixel a 10×10 square) gives the
/// same prediction as `gradspec mnist predict` on that picture saved as PNG, and the same
/// probabilities within 1e-4 (the page runs the portable code path in WebAssembly, the CLI
/// the fastest path of this CPU: the sums differ in order, by about 1e-6).
#[test]
fn drawn_test_digits_get_predicts_answer() {
    let Some(s) = setup() else { return };
    let test = data::load_split(&data::resolve_dir(None), Split::Test).unwrap();
    let dir = s.book.parent().unwrap().join("digits");
    std::fs::create_dir_all(&dir).unwrap();
    for index in [0usize, 1, 2, 3, 4, 8, 247, 1000] {
        let px = test.image(index);
        let hex: String = px.iter().map(|b| format!("{b:02x}")).collect();
        let (dom, console) = dom(s, "cnn.html", &format!("?digit={hex}"));
        let errs = js_errors(&dom, &console);
        assert!(
            errs.is_empty(),
            "digit {index}: JavaScript errors: {errs:?}"
        );
        assert!(dom.contains("data-selftest=\"part2-done\""));
        let page_pred: u8 = between(&dom, "<strong id=\"prediction\">", "</strong>")
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("digit {index}: no prediction on the page"));
        let page_probs: Vec<f64> = serde_json::from_str(
            &between(&dom, "data-probs=\"", "\"").expect("the page's probabilities"),
        )
        .unwrap();

        let img = image::GrayImage::from_fn(280, 280, |x, y| {
            image::Luma([255 - px[(y / 10 * 28 + x / 10) as usize]])
        });
        let png = dir.join(format!("test-{index}.png"));
        img.save(&png).unwrap();
        let out = Command::new(BIN)
            .args(["mnist", "predict", "--json"])
            .arg(&png)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let cli_pred = v["images"][0]["prediction"].as_u64().unwrap() as u8;
        assert_eq!(page_pred, cli_pred, "digit {index}: canvas vs predict");
        let cli_probs: Vec<f64> = v["images"][0]["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_f64().unwrap())
            .collect();
        assert_eq!(
            page_probs.len(),
            10,
            "digit {index}: the page shows ten probabilities"
        );
        for (d, (a, b)) in page_probs.iter().zip(&cli_probs).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4,
                "digit {index}, class {d}: page {a} vs predict {b}"
            );
        }
    }
}

/// Nothing is clipped: in a 1280-px-wide window no element of any page's main column (the
/// column itself included) has content wider than its box (`scrollWidth > clientWidth`), so
/// no equation, table or figure is cut off or needs its own scroll bar. The page's
/// `layout.js` measures after the scripts ran (Part 1 with its live numbers, Part 2 with a
/// drawn digit's maps) and lists the offenders.
#[test]
fn nothing_overflows_the_main_column_at_1280_px() {
    let Some(s) = setup() else { return };
    let test = data::load_split(&data::resolve_dir(None), Split::Test).unwrap();
    let hex: String = test.image(0).iter().map(|b| format!("{b:02x}")).collect();
    let mut problems = Vec::new();
    for (page, query) in [
        ("index.html", "?overflow".to_string()),
        ("backprop.html", "?overflow&selftest".to_string()),
        ("cnn.html", format!("?overflow&digit={hex}")),
    ] {
        let (dom, console) = dom_at(s, page, &query, "1280,900");
        let errs = js_errors(&dom, &console);
        assert!(errs.is_empty(), "{page}: JavaScript errors: {errs:?}");
        let list = between(&dom, "data-overflow=\"", "\"")
            .unwrap_or_else(|| panic!("{page}: layout.js did not run"));
        let bad: Vec<String> = serde_json::from_str(&unescape(&list)).unwrap();
        let width: u32 = between(&dom, "data-main-width=\"", "\"")
            .unwrap()
            .parse()
            .unwrap();
        assert!(width > 500, "{page}: main column only {width} px wide");
        problems.extend(bad.into_iter().map(|b| format!("{page}: {b}")));
    }
    assert!(
        problems.is_empty(),
        "wider than their box at 1280 px:\n{}",
        problems.join("\n")
    );
}

/// Share of pixels that differ from the most common colour.
fn ink(png: &Path) -> f64 {
    let img = image::open(png).unwrap().to_rgb8();
    let mut counts = std::collections::HashMap::new();
    for p in img.pixels() {
        *counts.entry(p.0).or_insert(0usize) += 1;
    }
    let top = counts.values().max().copied().unwrap_or(0);
    1.0 - top as f64 / (img.width() * img.height()) as f64
}

/// Every page's screenshot (at 1280×1600) has content: at least 3% of its pixels differ from
/// the background (a page whose script failed and left it white, or an empty page, has far
/// less).
#[test]
fn screenshots_are_not_blank() {
    let Some(s) = setup() else { return };
    for (page, query) in [
        ("index.html", ""),
        ("backprop.html", "?selftest"),
        ("cnn.html", ""),
    ] {
        let shot = s.shots.join(page.replace(".html", ".png"));
        let url = format!("file://{}{query}", s.book.join(page).display());
        let ok = Command::new(&s.chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--virtual-time-budget=10000",
                "--window-size=1280,1600",
            ])
            .arg(format!("--screenshot={}", shot.display()))
            .arg(&url)
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok && shot.is_file(), "{page}: no screenshot");
        let share = ink(&shot);
        assert!(share > 0.03, "{page}: screenshot is blank ({share:.4} ink)");
    }
}

//! `gradspec backprop xlsx`, opened in a real spreadsheet engine: LibreOffice headless
//! recalculates the workbook and exports every sheet as CSV (`soffice --convert-to csv` with
//! sheet index −1), and every cell is compared with the spec's own functions.
//!
//! **Recalculation is proven, not assumed.** Each conversion runs with its own LibreOffice
//! profile whose `OOXMLRecalcMode` says either "always recalculate on load" (0) or "never"
//! (1). The files checked for numbers under "always" are written with `--no-cached-results`,
//! so every formula's stored result is 0: a number other than 0 can only come from LibreOffice
//! evaluating the formula. Under "never", the same file shows those zeros (checked), and the
//! default file shows its cached results, which must agree with the spec as well.
//!
//! **Digits.** The CSV filter's "save cell contents as shown" is off, so LibreOffice writes
//! each number in full rather than as formatted; LibreOffice 7.4 then prints at most 15
//! significant digits and at most 20 decimal places.
//!
//! **Tolerance.** `|LibreOffice − spec| ≤ 1e-12 · |spec| + 5e-21`. The relative part is the
//! spec's golden-file tolerance (spec/backprop.md, "Golden files"): LibreOffice evaluates the
//! same f64 operations, but its `EXP` and `^2` may round differently in the last ulp, and one
//! ulp grows only by small factors over 100 contracting steps; 15 printed digits add at most
//! 5e-15 relative. The absolute part is half a unit in the 20th decimal place, the CSV's own
//! rounding of numbers below 1e-5 (a gradient of −4.5e-9 is printed with 12 digits); it is
//! not a tolerance on the arithmetic.
//!
//! Needs LibreOffice (`soffice`; `.ci/run` installs `libreoffice-calc`); without it the tests
//! print SKIPPED, unless `GRADSPEC_REQUIRE_LIBREOFFICE` is set, as in CI.
use gradspec::backprop::State;
use gradspec::backprop::sweep::DEFAULT_LRS;
use gradspec::backprop::table::{HEADER, table_csv};
use gradspec::backprop::xlsx::{column_labels, row_formulas};
use gradspec::spec::Registry;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

const BIN: &str = env!("CARGO_BIN_EXE_gradspec");

/// Relative tolerance: the spec's golden-file tolerance (see the module docs).
const REL: f64 = 1e-12;
/// Half a unit in the 20th decimal place: LibreOffice's CSV prints no more decimals.
const PRINT_ABS: f64 = 5e-21;

fn skip(why: &str) -> Option<PathBuf> {
    const REQUIRE: &str = "GRADSPEC_REQUIRE_LIBREOFFICE";
    assert!(
        std::env::var_os(REQUIRE).is_none(),
        "{REQUIRE} is set but {why}"
    );
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
    None
}

/// The LibreOffice binary (`GRADSPEC_SOFFICE`, else `soffice` or `libreoffice` on the PATH).
fn soffice() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GRADSPEC_SOFFICE") {
        return Some(PathBuf::from(p));
    }
    ["soffice", "libreoffice"]
        .iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(PathBuf::from)
        .or_else(|| skip("LibreOffice (soffice) not found (apt-get install libreoffice-calc)"))
}

fn tmp(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("backprop-xlsx")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn gradspec(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("the binary runs")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "gradspec failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// What a conversion exports from each cell.
#[derive(Clone, Copy, PartialEq)]
enum Recalc {
    /// Recalculate every formula on load (`OOXMLRecalcMode` 0).
    Always,
    /// Show the stored results (`OOXMLRecalcMode` 1).
    Never,
}

/// One sheet as LibreOffice exported it: its rows of cells.
type Sheet = Vec<Vec<String>>;

/// Converts `xlsx` with LibreOffice into one CSV per sheet and reads them back, by sheet name.
/// `formulas`: export each formula's text instead of its value.
fn convert(soffice: &Path, xlsx: &Path, recalc: Recalc, formulas: bool) -> Vec<(String, Sheet)> {
    // One LibreOffice at a time: it is heavy, and the machine is shared.
    static ONE: Mutex<()> = Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let work = xlsx.with_extension(format!(
        "{}-{}",
        if recalc == Recalc::Always {
            "always"
        } else {
            "never"
        },
        if formulas { "formulas" } else { "values" }
    ));
    let _ = std::fs::remove_dir_all(&work);
    let user = work.join("profile/user");
    std::fs::create_dir_all(&user).unwrap();
    let mode = if recalc == Recalc::Always { 0 } else { 1 };
    std::fs::write(
        user.join("registrymodifications.xcu"),
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>{mode}</value></prop></item>
</oor:items>
"#
        ),
    )
    .unwrap();
    let out = work.join("csv");
    // Filter options: ',' separator, '"' quotes, UTF-8, from line 1, default cell format,
    // default language, quoted fields as text no, detect special numbers yes, save cell
    // contents as shown NO (full digits), export formulas, remove spaces no, all sheets (−1).
    let filter = format!(
        "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,{formulas},false,-1"
    );
    let profile = format!("file://{}", work.join("profile").display());
    let o = Command::new(soffice)
        .arg(format!("-env:UserInstallation={profile}"))
        .args(["--headless", "--convert-to", &filter, "--outdir"])
        .arg(&out)
        .arg(xlsx)
        .output()
        .expect("soffice runs");
    assert!(
        o.status.success(),
        "soffice failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stem = xlsx.file_stem().unwrap().to_string_lossy().into_owned();
    let mut sheets: Vec<(String, Sheet)> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_stem()?.to_string_lossy().into_owned();
            let sheet = name.strip_prefix(&format!("{stem}-"))?.to_string();
            let mut r = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_path(&p)
                .unwrap();
            let rows = r
                .records()
                .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
                .collect();
            Some((sheet, rows))
        })
        .collect();
    assert!(
        !sheets.is_empty(),
        "soffice wrote no CSV into {}: {}",
        out.display(),
        String::from_utf8_lossy(&o.stdout)
    );
    sheets.sort_by(|a, b| a.0.cmp(&b.0));
    sheets
}

fn sheet<'a>(sheets: &'a [(String, Sheet)], name: &str) -> &'a Sheet {
    &sheets
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| {
            panic!(
                "no sheet {name}; sheets: {:?}",
                sheets.iter().map(|s| &s.0).collect::<Vec<_>>()
            )
        })
        .1
}

/// The table part of a rate's sheet: the spec-label line, the quantity-name line and the data
/// rows (32 cells each).
fn table_part(s: &Sheet) -> (&[String], &[String], &[Vec<String>]) {
    let at = s
        .iter()
        .position(|r| r.first().is_some_and(|c| c == "iteration"))
        .expect("a header line that starts with 'iteration'");
    let data = &s[at + 2..];
    (&s[at][..32], &s[at + 1][..32], data)
}

fn parse(cell: &str, at: &str) -> f64 {
    cell.parse()
        .unwrap_or_else(|_| panic!("{at}: '{cell}' is not a number"))
}

/// Compares a rate's sheet with `backprop table`'s CSV (header line and rows), cell by cell;
/// returns the largest relative deviation seen.
fn assert_sheet_matches_table(name: &str, s: &Sheet, table: &str) -> f64 {
    let (labels, _titles, data) = table_part(s);
    assert_eq!(
        labels,
        column_labels(),
        "{name}: the spec-label header line"
    );
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header, HEADER.split(',').collect::<Vec<_>>());
    let want: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|x| parse(x, "table")).collect())
        .collect();
    assert_eq!(data.len(), want.len(), "{name}: one row per iteration");
    let mut worst = 0f64;
    for (k, (row, w)) in data.iter().zip(&want).enumerate() {
        assert_eq!(row.len(), 32, "{name} row {k}: 32 cells");
        for (j, (cell, &spec)) in row.iter().zip(w).enumerate() {
            let at = format!("{name} row {k} column {}", header[j]);
            let lo = parse(cell, &at);
            let dev = (lo - spec).abs();
            assert!(
                dev <= REL * spec.abs() + PRINT_ABS,
                "{at}: LibreOffice {lo:e}, spec {spec:e} (difference {dev:e})"
            );
            if spec != 0.0 && spec.abs() > 1e-5 {
                worst = worst.max(dev / spec.abs());
            }
        }
    }
    worst
}

/// Verifies r[bp.fwd.sigmoid] r[bp.fwd.h1] r[bp.fwd.h2] r[bp.fwd.a_h1] r[bp.fwd.a_h2] r[bp.fwd.o1] r[bp.fwd.o2] r[bp.fwd.a_o1] r[bp.fwd.a_o2] r[bp.loss.e1] r[bp.loss.e2] r[bp.loss.total] r[bp.grad.w1] r[bp.grad.w2] r[bp.grad.w3] r[bp.grad.w4] r[bp.grad.w5] r[bp.grad.w6] r[bp.grad.w7] r[bp.grad.w8] r[bp.update] as spreadsheet formulas, recalculated by LibreOffice.
#[test]
fn libreoffice_recalculates_every_cell_of_the_six_rate_workbook_to_the_spec() {
    let Some(soffice) = soffice() else { return };
    let dir = tmp("six");
    let file = dir.join("part1.xlsx");
    let f = file.to_str().unwrap();
    ok(&gradspec(&[
        "backprop",
        "xlsx",
        "--out",
        f,
        "--no-cached-results",
    ]));
    let sheets = convert(&soffice, &file, Recalc::Always, false);
    let mut names: Vec<String> = DEFAULT_LRS.iter().map(|lr| format!("lr_{lr:?}")).collect();
    names.push("E_total".into());
    names.sort();
    assert_eq!(
        sheets.iter().map(|s| s.0.clone()).collect::<Vec<_>>(),
        names
    );
    let mut worst = 0f64;
    for lr in DEFAULT_LRS {
        let name = format!("lr_{lr:?}");
        let table = table_csv(State::spreadsheet(), lr, 100).unwrap();
        worst = worst.max(assert_sheet_matches_table(
            &name,
            sheet(&sheets, &name),
            &table,
        ));
    }
    eprintln!("largest relative deviation (cells above 1e-5): {worst:e}");

    // Every spec label of the header is an equation of spec/backprop.md.
    let reg = Registry::load(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
    for l in column_labels().into_iter().filter(|l| l.starts_with("bp.")) {
        assert!(
            reg.equations.iter().any(|(label, _)| label == l),
            "header label {l} is not in the spec"
        );
    }

    // The overview: η, E_total at the first and last row, read from each rate's sheet.
    let o = sheet(&sheets, "E_total");
    for lr in DEFAULT_LRS {
        let name = format!("lr_{lr:?}");
        let row = o
            .iter()
            .find(|r| r.first() == Some(&name))
            .unwrap_or_else(|| panic!("E_total sheet: no row for {name}"));
        let curve: Vec<f64> = gradspec::backprop::train::Trainer::new(State::spreadsheet(), lr)
            .take(100)
            .map(|r| r.fwd.e_total)
            .collect();
        for (cell, spec) in row[1..4].iter().zip([lr, curve[0], curve[99]]) {
            let lo = parse(cell, &format!("E_total sheet, {name}"));
            assert!(
                (lo - spec).abs() <= REL * spec.abs() + PRINT_ABS,
                "E_total sheet, {name}: LibreOffice {lo:e}, spec {spec:e}"
            );
        }
    }
}

/// Another η, other inputs, targets and starting weights: the workbook still agrees with
/// `gradspec backprop table` for the same flags.
#[test]
fn a_workbook_with_another_rate_and_other_weights_agrees_with_backprop_table() {
    let Some(soffice) = soffice() else { return };
    let dir = tmp("other");
    let file = dir.join("other.xlsx");
    let settings = [
        "--i1", "0.3", "--i2", "-0.7", "--t1", "0.1", "--t2", "0.9", "--w1", "-0.4", "--w2",
        "0.35", "--w3", "1.2", "--w4", "-0.25", "--w5", "0.8", "--w6", "-1.1", "--w7", "0.05",
        "--w8", "0.6",
    ];
    let mut args = vec![
        "backprop",
        "xlsx",
        "--out",
        file.to_str().unwrap(),
        "--no-cached-results",
        "--lr",
        "0.35",
    ];
    args.extend(settings);
    ok(&gradspec(&args));
    let mut targs = vec!["backprop", "table", "--lr", "0.35"];
    targs.extend(settings);
    let table = ok(&gradspec(&targs));
    let sheets = convert(&soffice, &file, Recalc::Always, false);
    let s = sheet(&sheets, "lr_0.35");
    // The input cells hold the flags' values.
    let at = s
        .iter()
        .position(|r| r.first().is_some_and(|c| c == "value"))
        .unwrap();
    let inputs: Vec<f64> = s[at][1..14].iter().map(|c| parse(c, "inputs")).collect();
    assert_eq!(
        inputs,
        [
            0.3, -0.7, 0.1, 0.9, -0.4, 0.35, 1.2, -0.25, 0.8, -1.1, 0.05, 0.6, 0.35
        ]
    );
    let worst = assert_sheet_matches_table("lr_0.35", s, &table);
    eprintln!("largest relative deviation (cells above 1e-5): {worst:e}");
}

/// A viewer that does not recalculate shows the cached results, which are the spec's numbers;
/// a file written without them shows zeros there (so the other tests' numbers are
/// LibreOffice's own).
#[test]
fn without_recalculation_libreoffice_shows_the_cached_results() {
    let Some(soffice) = soffice() else { return };
    let dir = tmp("cached");
    let with = dir.join("with.xlsx");
    let without = dir.join("without.xlsx");
    ok(&gradspec(&[
        "backprop",
        "xlsx",
        "--out",
        with.to_str().unwrap(),
        "--lrs",
        "0.5,2.0",
    ]));
    ok(&gradspec(&[
        "backprop",
        "xlsx",
        "--out",
        without.to_str().unwrap(),
        "--lrs",
        "0.5,2.0",
        "--no-cached-results",
    ]));
    let sheets = convert(&soffice, &with, Recalc::Never, false);
    for lr in [0.5, 2.0] {
        let name = format!("lr_{lr:?}");
        let table = table_csv(State::spreadsheet(), lr, 100).unwrap();
        assert_sheet_matches_table(&name, sheet(&sheets, &name), &table);
    }
    let bare = convert(&soffice, &without, Recalc::Never, false);
    let (_, _, data) = table_part(sheet(&bare, "lr_0.5"));
    for row in data {
        for cell in &row[1..] {
            assert_eq!(
                cell, "0",
                "a formula's stored result without --cached-results"
            );
        }
    }
}

/// Every derived cell is a formula (as LibreOffice reads it back), the same text as
/// `row_formulas`: `h1 = w1*i1 + w2*i2` is `=F10*D10+G10*E10`, and each weight of row k + 1 is
/// `w − η·∂E_total/∂w` of row k.
#[test]
fn every_derived_cell_is_a_live_formula_in_libreoffice() {
    let Some(soffice) = soffice() else { return };
    let dir = tmp("formulas");
    let file = dir.join("f.xlsx");
    ok(&gradspec(&[
        "backprop",
        "xlsx",
        "--out",
        file.to_str().unwrap(),
        "--lr",
        "0.5",
    ]));
    let sheets = convert(&soffice, &file, Recalc::Always, true);
    let (_, titles, data) = table_part(sheet(&sheets, "lr_0.5"));
    assert_eq!(titles[9], "h1");
    assert_eq!(data.len(), 100);
    for (k, row) in data.iter().enumerate() {
        assert_eq!(row[0], k.to_string(), "the iteration is a number");
        let want = row_formulas(k).unwrap();
        assert_eq!(&row[1..32], &want[..], "row {k}'s formulas");
    }
    assert_eq!(data[0][9], "=F10*D10+G10*E10");
    assert_eq!(data[0][10], "=1/(1+EXP(-J10))");
    assert_eq!(data[1][5], "=F10-eta*Y10");
    assert_eq!(data[0][5], "=init_w1");
}

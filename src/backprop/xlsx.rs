//! The spreadsheet as a spreadsheet: `gradspec backprop xlsx` writes Part 1 as an `.xlsx`
//! workbook whose every derived cell is a live formula, laid out like the source sheet.
//!
//! One sheet per learning rate (`lr_0.5`, named like the sweep's CSV columns), each with:
//! * at the top, the **input cells**: i1, i2, t1, t2, the initial weights w1 … w8 and η, each
//!   labelled and named (sheet-scoped names `input_i1`, `input_i2`, `target_t1`, `target_t2`,
//!   `init_w1` … `init_w8`, `eta`; plain `i1` or `w1` cannot be names, they are cell
//!   addresses);
//! * a two-line header: the spec label of each column (`bp.fwd.h1`, `bp.grad.w5`, …) over the
//!   quantity's name;
//! * one row per iteration in [`HEADER`](super::table::HEADER)'s column order, so the sheet
//!   reads like `gradspec backprop table`: `h1 = w1*i1 + w2*i2` is `=F11*D11+G11*E11`,
//!   `a_h1` is `=1/(1+EXP(-J11))`, each gradient is the spec's product of chain-rule pieces, and
//!   each weight of row k + 1 is `w − η·∂E_total/∂w` of row k (row 0 takes the initial
//!   weights);
//! * a native chart of E_total against the iteration, right of the table.
//!
//! A first sheet, `E_total`, compares the rates: a small table of formulas that read each
//! rate's sheet, and one chart with every rate's curve.
//!
//! Every formula also carries its result as a cached value, computed by this crate's own
//! functions ([`Trainer`]), so that a viewer that does not recalculate still shows the
//! numbers; [`XlsxOptions::cached_results`] turns that off (every cached value is then 0 and
//! only a recalculating spreadsheet shows numbers, which is how `tests/backprop_xlsx.rs`
//! proves that LibreOffice computed the formulas itself).
use super::State;
use super::sweep::{column_name, validate_lrs};
use super::table::row_numbers;
use super::train::{Row, Trainer};
use crate::error::{Result, ensure, err};
use rust_xlsxwriter::utility::column_number_to_name;
use rust_xlsxwriter::{
    Chart, ChartType, Color, Format, FormatAlign, FormatBorder, Formula, Workbook, Worksheet,
    XlsxError,
};
use std::path::Path;

/// The most rows per sheet `backprop xlsx` writes (each row is 31 formulas per rate; a
/// spreadsheet recalculates about two million of them at this limit with six rates).
pub const MAX_XLSX_ITERATIONS: usize = 10_000;

/// How the workbook is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XlsxOptions {
    /// Store each formula's result (computed by this crate) beside the formula, for viewers
    /// that do not recalculate. Without it every stored result is 0.
    pub cached_results: bool,
}

impl Default for XlsxOptions {
    fn default() -> Self {
        XlsxOptions {
            cached_results: true,
        }
    }
}

/// One column of a rate's sheet: its quantity (as in the CSV header), the spec label that
/// defines it, the name shown to a reader, and its formula.
///
/// A formula template names cells by quantity: `{h1}` is this row's h1 cell, `{w1-}` the w1
/// cell of the row above; anything else (`eta`, `EXP`) is copied as is.
struct Column {
    /// The CSV header's name (`h1`, `dE_dw5`).
    name: &'static str,
    /// The spec label (`bp.fwd.h1`), or a word for the columns no equation defines.
    label: &'static str,
    /// The quantity as a reader writes it (`a_h1`, `∂E_total/∂w5`).
    title: &'static str,
    /// The formula of every row, or of rows 1 … when `first` is given.
    formula: &'static str,
    /// The formula of row 0, when it differs (the weights take the input cells).
    first: Option<&'static str>,
}

const fn col(
    name: &'static str,
    label: &'static str,
    title: &'static str,
    formula: &'static str,
) -> Column {
    Column {
        name,
        label,
        title,
        formula,
        first: None,
    }
}

const fn weight(
    name: &'static str,
    title: &'static str,
    init: &'static str,
    formula: &'static str,
) -> Column {
    Column {
        name,
        label: "bp.update",
        title,
        formula,
        first: Some(init),
    }
}

/// The columns after `iteration`, in [`HEADER`](super::table::HEADER)'s order.
const COLUMNS: [Column; 31] = [
    col("t1", "input", "t1", "=target_t1"),
    col("t2", "input", "t2", "=target_t2"),
    col("i1", "input", "i1", "=input_i1"),
    col("i2", "input", "i2", "=input_i2"),
    weight("w1", "w1", "=init_w1", "={w1-}-eta*{dE_dw1-}"),
    weight("w2", "w2", "=init_w2", "={w2-}-eta*{dE_dw2-}"),
    weight("w3", "w3", "=init_w3", "={w3-}-eta*{dE_dw3-}"),
    weight("w4", "w4", "=init_w4", "={w4-}-eta*{dE_dw4-}"),
    col("h1", "bp.fwd.h1", "h1", "={w1}*{i1}+{w2}*{i2}"),
    col("a_h1", "bp.fwd.a_h1", "a_h1", "=1/(1+EXP(-{h1}))"),
    col("h2", "bp.fwd.h2", "h2", "={w3}*{i1}+{w4}*{i2}"),
    col("a_h2", "bp.fwd.a_h2", "a_h2", "=1/(1+EXP(-{h2}))"),
    weight("w5", "w5", "=init_w5", "={w5-}-eta*{dE_dw5-}"),
    weight("w6", "w6", "=init_w6", "={w6-}-eta*{dE_dw6-}"),
    weight("w7", "w7", "=init_w7", "={w7-}-eta*{dE_dw7-}"),
    weight("w8", "w8", "=init_w8", "={w8-}-eta*{dE_dw8-}"),
    col("o1", "bp.fwd.o1", "o1", "={w5}*{a_h1}+{w6}*{a_h2}"),
    col("a_o1", "bp.fwd.a_o1", "a_o1", "=1/(1+EXP(-{o1}))"),
    col("o2", "bp.fwd.o2", "o2", "={w7}*{a_h1}+{w8}*{a_h2}"),
    col("a_o2", "bp.fwd.a_o2", "a_o2", "=1/(1+EXP(-{o2}))"),
    col("E1", "bp.loss.e1", "E1", "=0.5*({t1}-{a_o1})^2"),
    col("E2", "bp.loss.e2", "E2", "=0.5*({t2}-{a_o2})^2"),
    col("E_total", "bp.loss.total", "E_total", "={E1}+{E2}"),
    col(
        "dE_dw1",
        "bp.grad.w1",
        "∂E_total/∂w1",
        "=(({a_o1}-{t1})*{a_o1}*(1-{a_o1})*{w5}+({a_o2}-{t2})*{a_o2}*(1-{a_o2})*{w7})*{a_h1}*(1-{a_h1})*{i1}",
    ),
    col(
        "dE_dw2",
        "bp.grad.w2",
        "∂E_total/∂w2",
        "=(({a_o1}-{t1})*{a_o1}*(1-{a_o1})*{w5}+({a_o2}-{t2})*{a_o2}*(1-{a_o2})*{w7})*{a_h1}*(1-{a_h1})*{i2}",
    ),
    col(
        "dE_dw3",
        "bp.grad.w3",
        "∂E_total/∂w3",
        "=(({a_o1}-{t1})*{a_o1}*(1-{a_o1})*{w6}+({a_o2}-{t2})*{a_o2}*(1-{a_o2})*{w8})*{a_h2}*(1-{a_h2})*{i1}",
    ),
    col(
        "dE_dw4",
        "bp.grad.w4",
        "∂E_total/∂w4",
        "=(({a_o1}-{t1})*{a_o1}*(1-{a_o1})*{w6}+({a_o2}-{t2})*{a_o2}*(1-{a_o2})*{w8})*{a_h2}*(1-{a_h2})*{i2}",
    ),
    col(
        "dE_dw5",
        "bp.grad.w5",
        "∂E_total/∂w5",
        "=({a_o1}-{t1})*{a_o1}*(1-{a_o1})*{a_h1}",
    ),
    col(
        "dE_dw6",
        "bp.grad.w6",
        "∂E_total/∂w6",
        "=({a_o1}-{t1})*{a_o1}*(1-{a_o1})*{a_h2}",
    ),
    col(
        "dE_dw7",
        "bp.grad.w7",
        "∂E_total/∂w7",
        "=({a_o2}-{t2})*{a_o2}*(1-{a_o2})*{a_h1}",
    ),
    col(
        "dE_dw8",
        "bp.grad.w8",
        "∂E_total/∂w8",
        "=({a_o2}-{t2})*{a_o2}*(1-{a_o2})*{a_h2}",
    ),
];

/// The defined names of the initial weights' cells, in the order of
/// [`super::Weights::to_array`]; each cell's label is the name without `init_`.
const WEIGHT_NAMES: [&str; 8] = [
    "init_w1", "init_w2", "init_w3", "init_w4", "init_w5", "init_w6", "init_w7", "init_w8",
];

/// The input cells at the top of each rate's sheet: label, defined name, value.
fn inputs(state: &State<f64>, lr: f64) -> Vec<(&'static str, &'static str, f64)> {
    let weights = WEIGHT_NAMES
        .iter()
        .zip(state.w.to_array())
        .map(|(&name, w)| {
            let label = name.strip_prefix("init_").unwrap_or(name);
            (label, name, w)
        });
    [
        ("i1", "input_i1", state.i1),
        ("i2", "input_i2", state.i2),
        ("t1", "target_t1", state.t1),
        ("t2", "target_t2", state.t2),
    ]
    .into_iter()
    .chain(weights)
    .chain([("η", "eta", lr)])
    .collect()
}

/// Row (0-based) of the input cells' labels; their values sit one row below, their names two.
const INPUT_ROW: u32 = 3;
/// Row (0-based) of the spec labels; the quantity names sit one row below.
pub const LABEL_ROW: u32 = 7;
/// Row (0-based) of iteration 0.
pub const FIRST_ROW: u32 = 9;

/// The name of a rate's sheet: `lr_0.5` (as the sweep's CSV column).
pub fn sheet_name(lr: f64) -> String {
    column_name(lr)
}

/// The sheet name as a formula writes it: `'lr_0.5'`.
fn quoted(sheet: &str) -> String {
    format!("'{}'", sheet.replace('\'', "''"))
}

/// The column (0-based) of a quantity: `iteration` is 0, then [`COLUMNS`] in order.
fn column_of(name: &str) -> Option<u16> {
    if name == "iteration" {
        return Some(0);
    }
    COLUMNS
        .iter()
        .position(|c| c.name == name)
        .and_then(|j| u16::try_from(j + 1).ok())
}

/// Fills a template for the 0-based sheet row `row`: `{x}` becomes this row's cell of
/// quantity x (`F11`), `{x-}` the one of the row above.
fn expand(template: &str, row: u32) -> Result<String> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| err!("formula template '{template}': unclosed '{{'"))?
            + open;
        let key = &rest[open + 1..close];
        let (name, r) = match key.strip_suffix('-') {
            Some(n) => (
                n,
                row.checked_sub(1)
                    .ok_or_else(|| err!("formula template '{template}': no row above row 0"))?,
            ),
            None => (key, row),
        };
        let c = column_of(name)
            .ok_or_else(|| err!("formula template '{template}': no column '{name}'"))?;
        out.push_str(&column_number_to_name(c));
        out.push_str(&(r + 1).to_string());
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The formulas of iteration `k` (0-based), one per column after `iteration`, as a cell
/// holds them (`=F10*D10+G10*E10`).
pub fn row_formulas(k: usize) -> Result<Vec<String>> {
    let row = sheet_row(k)?;
    COLUMNS
        .iter()
        .map(|c| {
            let t = match (k, c.first) {
                (0, Some(first)) => first,
                _ => c.formula,
            };
            expand(t, row)
        })
        .collect()
}

fn sheet_row(k: usize) -> Result<u32> {
    u32::try_from(k)
        .ok()
        .and_then(|k| k.checked_add(FIRST_ROW))
        .ok_or_else(|| err!("iteration {k} does not fit in a sheet"))
}

/// The spec label of every column, `iteration` first, as the sheet's first header line holds
/// them.
pub fn column_labels() -> Vec<&'static str> {
    std::iter::once("iteration")
        .chain(COLUMNS.iter().map(|c| c.label))
        .collect()
}

/// A number as a cached formula result: the shortest form that reads back as the same f64.
fn cached(x: f64) -> String {
    format!("{x}")
}

fn xl(what: &str) -> impl Fn(XlsxError) -> crate::Error + '_ {
    move |e| err!("{what}: {e}")
}

/// The trained rows of every rate: all the numbers first, so that a rate that diverges writes
/// nothing.
fn train_all(state: State<f64>, lrs: &[f64], iterations: usize) -> Result<Vec<Vec<Row<f64>>>> {
    validate_lrs(lrs)?;
    ensure!(
        (1..=MAX_XLSX_ITERATIONS).contains(&iterations),
        "iterations must be from 1 to {MAX_XLSX_ITERATIONS} for a workbook, got {iterations}"
    );
    lrs.iter()
        .map(|&lr| {
            let rows: Vec<Row<f64>> = Trainer::new(state, lr).take(iterations).collect();
            for r in &rows {
                r.check_finite(lr)?;
            }
            Ok(rows)
        })
        .collect()
}

/// The workbook as bytes: the `E_total` overview sheet, then one sheet per rate in the order
/// given (see the module docs). Fails, before building anything, when `lrs` is empty, has a
/// repeat or a rate that is not finite and > 0, when `iterations` is outside
/// 1 … [`MAX_XLSX_ITERATIONS`], or when a rate [diverges](super::train::Diverged).
pub fn workbook_bytes(
    state: State<f64>,
    lrs: &[f64],
    iterations: usize,
    opts: XlsxOptions,
) -> Result<Vec<u8>> {
    let runs = train_all(state, lrs, iterations)?;
    let mut wb = Workbook::new();
    let fmt = Formats::new();

    let overview = wb.add_worksheet();
    overview
        .set_name("E_total")
        .map_err(xl("sheet 'E_total'"))?;
    write_overview(overview, lrs, &runs, iterations, &fmt, opts)?;

    for (&lr, rows) in lrs.iter().zip(&runs) {
        let name = sheet_name(lr);
        let ws = wb.add_worksheet();
        ws.set_name(&name)
            .map_err(|e| err!("sheet '{name}': {e}"))?;
        write_rate_sheet(ws, &name, &state, lr, rows, &fmt, opts)?;
        let q = quoted(&name);
        for (j, (_, defined, _)) in inputs(&state, lr).iter().enumerate() {
            let cell = format!(
                "={q}!${}${}",
                column_number_to_name(j as u16 + 1),
                INPUT_ROW + 2
            );
            wb.define_name(format!("{q}!{defined}"), &cell)
                .map_err(|e| err!("name '{defined}' on sheet '{name}': {e}"))?;
        }
    }
    wb.save_to_buffer().map_err(xl("cannot build the workbook"))
}

/// Writes the workbook to `path` atomically (temporary file, then rename; see
/// [`crate::fsutil::write_atomic`]); everything is computed first, so a bad setting writes
/// nothing.
pub fn write_xlsx(
    path: &Path,
    state: State<f64>,
    lrs: &[f64],
    iterations: usize,
    opts: XlsxOptions,
) -> Result<()> {
    let bytes = workbook_bytes(state, lrs, iterations, opts)?;
    crate::fsutil::write_bytes_atomic(path, &bytes)
}

/// The cell formats: bold headers, the input cells (filled, as a learner's "change me"), the
/// labels in grey.
struct Formats {
    title: Format,
    head: Format,
    label: Format,
    input: Format,
    note: Format,
    /// Losses and gradients shrink to 1e-9 and below: scientific notation with 9 significant
    /// digits (the spec's rounding for human-facing text), so that a small number keeps its
    /// digits on screen.
    small: Format,
}

impl Formats {
    fn new() -> Self {
        Formats {
            title: Format::new().set_bold().set_font_size(14),
            head: Format::new()
                .set_bold()
                .set_align(FormatAlign::Center)
                .set_border_bottom(FormatBorder::Thin),
            label: Format::new()
                .set_font_color(Color::RGB(0x555555))
                .set_italic()
                .set_align(FormatAlign::Center),
            input: Format::new()
                .set_background_color(Color::RGB(0xDDEBF7))
                .set_font_color(Color::RGB(0x1F4E79))
                .set_bold()
                .set_border(FormatBorder::Thin),
            note: Format::new().set_font_color(Color::RGB(0x555555)),
            small: Format::new().set_num_format("0.00000000E+00"),
        }
    }
}

/// Writes a formula, with its cached result unless the options say not to.
fn formula(
    ws: &mut Worksheet,
    row: u32,
    col: u16,
    text: &str,
    value: f64,
    format: Option<&Format>,
    opts: XlsxOptions,
) -> Result<()> {
    let mut f = Formula::new(text);
    if opts.cached_results {
        f = f.set_result(cached(value));
    }
    match format {
        Some(fmt) => ws.write_formula_with_format(row, col, f, fmt),
        None => ws.write_formula(row, col, f),
    }
    .map_err(|e| err!("cell {}{}: {e}", column_number_to_name(col), row + 1))?;
    Ok(())
}

/// Whether a column's numbers are formatted as [`Formats::small`]: the losses and gradients.
fn is_small(c: &Column) -> bool {
    c.name.starts_with('E') || c.name.starts_with("dE")
}

fn write_rate_sheet(
    ws: &mut Worksheet,
    name: &str,
    state: &State<f64>,
    lr: f64,
    rows: &[Row<f64>],
    fmt: &Formats,
    opts: XlsxOptions,
) -> Result<()> {
    let e = |e: XlsxError| err!("sheet '{name}': {e}");
    ws.write_string_with_format(
        0,
        0,
        format!(
            "Backpropagation by hand (spec/backprop.md): the 2-2-2 sigmoid network trained by \
             gradient descent at learning rate η = {lr:?}"
        ),
        &fmt.title,
    )
    .map_err(e)?;
    ws.write_string_with_format(
        1,
        0,
        "The blue cells are the inputs: change one and every other number recalculates. Every \
         other cell is a formula; the first header line names the equation of spec/backprop.md \
         that it computes. Row k holds the weights before update k + 1.",
        &fmt.note,
    )
    .map_err(e)?;
    ws.write_string_with_format(INPUT_ROW, 0, "input", &fmt.head)
        .map_err(e)?;
    ws.write_string_with_format(INPUT_ROW + 1, 0, "value", &fmt.head)
        .map_err(e)?;
    ws.write_string_with_format(INPUT_ROW + 2, 0, "name", &fmt.label)
        .map_err(e)?;
    for (j, (label, defined, value)) in inputs(state, lr).iter().enumerate() {
        let c = j as u16 + 1;
        ws.write_string_with_format(INPUT_ROW, c, *label, &fmt.head)
            .map_err(e)?;
        ws.write_number_with_format(INPUT_ROW + 1, c, *value, &fmt.input)
            .map_err(e)?;
        ws.write_string_with_format(INPUT_ROW + 2, c, *defined, &fmt.label)
            .map_err(e)?;
    }

    for (c, label) in column_labels().iter().enumerate() {
        ws.write_string_with_format(LABEL_ROW, c as u16, *label, &fmt.label)
            .map_err(e)?;
    }
    ws.write_string_with_format(LABEL_ROW + 1, 0, "iteration", &fmt.head)
        .map_err(e)?;
    for (j, c) in COLUMNS.iter().enumerate() {
        ws.write_string_with_format(LABEL_ROW + 1, j as u16 + 1, c.title, &fmt.head)
            .map_err(e)?;
    }
    for r in rows {
        let row = sheet_row(r.iteration)?;
        ws.write_number(row, 0, r.iteration as f64).map_err(e)?;
        let values = row_numbers(r);
        for (j, text) in row_formulas(r.iteration)?.iter().enumerate() {
            let format = is_small(&COLUMNS[j]).then_some(&fmt.small);
            formula(ws, row, j as u16 + 1, text, values[j], format, opts)?;
        }
    }
    ws.set_column_width(0, 10).map_err(e)?;
    ws.set_column_range_width(1, COLUMNS.len() as u16, 13)
        .map_err(e)?;
    ws.set_freeze_panes(FIRST_ROW, 1).map_err(e)?;
    ws.set_landscape();

    // The loss curve, right of the table.
    let last = FIRST_ROW + rows.len() as u32 - 1;
    let e_col = column_of("E_total").ok_or_else(|| err!("no E_total column"))?;
    let mut chart = Chart::new(ChartType::ScatterStraight);
    chart
        .add_series()
        .set_categories((name, FIRST_ROW, 0, last, 0))
        .set_values((name, FIRST_ROW, e_col, last, e_col))
        .set_name(&format!("η = {lr:?}"));
    chart
        .title()
        .set_name(&format!("E_total at learning rate η = {lr:?}"));
    chart
        .x_axis()
        .set_name("iteration (row k = weights before update k + 1)");
    chart.y_axis().set_name("E_total");
    chart.legend().set_hidden();
    ws.insert_chart(FIRST_ROW, COLUMNS.len() as u16 + 2, &chart)
        .map_err(e)?;
    Ok(())
}

/// The `E_total` sheet: per rate, its η and E_total at the first and last row (formulas that
/// read the rate's sheet), and one chart with every rate's curve.
fn write_overview(
    ws: &mut Worksheet,
    lrs: &[f64],
    runs: &[Vec<Row<f64>>],
    iterations: usize,
    fmt: &Formats,
    opts: XlsxOptions,
) -> Result<()> {
    let e = |e: XlsxError| err!("sheet 'E_total': {e}");
    ws.write_string_with_format(
        0,
        0,
        "Backpropagation by hand (spec/backprop.md): E_total by learning rate",
        &fmt.title,
    )
    .map_err(e)?;
    ws.write_string_with_format(
        1,
        0,
        "One sheet per learning rate follows, each a live calculation. The numbers here are \
         formulas that read those sheets.",
        &fmt.note,
    )
    .map_err(e)?;
    let last_k = iterations - 1;
    let heads = [
        "sheet".to_string(),
        "η".to_string(),
        "E_total[0]".to_string(),
        format!("E_total[{last_k}]"),
    ];
    for (c, h) in heads.iter().enumerate() {
        ws.write_string_with_format(3, c as u16, h, &fmt.head)
            .map_err(e)?;
    }
    let e_col = column_of("E_total").ok_or_else(|| err!("no E_total column"))?;
    let e_name = column_number_to_name(e_col);
    let mut chart = Chart::new(ChartType::ScatterStraight);
    for (j, (&lr, rows)) in lrs.iter().zip(runs).enumerate() {
        let row = 4 + j as u32;
        let name = sheet_name(lr);
        let q = quoted(&name);
        ws.write_string(row, 0, &name).map_err(e)?;
        formula(ws, row, 1, &format!("={q}!eta"), lr, None, opts)?;
        let first = rows.first().map_or(f64::NAN, |r| r.fwd.e_total);
        let last = rows.last().map_or(f64::NAN, |r| r.fwd.e_total);
        formula(
            ws,
            row,
            2,
            &format!("={q}!{e_name}{}", FIRST_ROW + 1),
            first,
            Some(&fmt.small),
            opts,
        )?;
        formula(
            ws,
            row,
            3,
            &format!("={q}!{e_name}{}", FIRST_ROW + rows.len() as u32),
            last,
            Some(&fmt.small),
            opts,
        )?;
        let last_row = FIRST_ROW + rows.len() as u32 - 1;
        chart
            .add_series()
            .set_categories((name.as_str(), FIRST_ROW, 0, last_row, 0))
            .set_values((name.as_str(), FIRST_ROW, e_col, last_row, e_col))
            .set_name(&format!("η = {lr:?}"));
    }
    chart
        .title()
        .set_name("2-2-2 sigmoid network: E_total by learning rate");
    chart
        .x_axis()
        .set_name("iteration (row k = weights before update k + 1)");
    chart.y_axis().set_name("E_total");
    chart.set_width(760).set_height(440);
    ws.set_column_width(0, 12).map_err(e)?;
    ws.set_column_range_width(1, 3, 16).map_err(e)?;
    ws.insert_chart(4 + lrs.len() as u32 + 2, 0, &chart)
        .map_err(e)?;
    // Printed (or exported as PDF), the table and the whole chart fit on one landscape page.
    ws.set_landscape().set_print_fit_to_pages(1, 1);
    Ok(())
}

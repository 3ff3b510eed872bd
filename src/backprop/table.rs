//! The spreadsheet as CSV: one row per iteration, every intermediate of the forward pass and
//! all eight gradients. Numbers are written in Rust's shortest round-trip form (`{}` for
//! `f64`), so parsing the CSV gives back exactly the bits that were computed.
use super::State;
use super::train::{Diverged, Row, Trainer, train_checked};
use std::io::Write;

/// The CSV header, in the spreadsheet's column order.
pub const HEADER: &str = "iteration,t1,t2,i1,i2,w1,w2,w3,w4,h1,a_h1,h2,a_h2,w5,w6,w7,w8,\
o1,a_o1,o2,a_o2,E1,E2,E_total,dE_dw1,dE_dw2,dE_dw3,dE_dw4,dE_dw5,dE_dw6,dE_dw7,dE_dw8";

/// The row's numbers in [`HEADER`]'s order after `iteration` (t1 … dE_dw8); the workbook of
/// `gradspec backprop xlsx` uses the same order.
pub fn row_numbers(r: &Row<f64>) -> [f64; 31] {
    let (s, f, g) = (&r.state, &r.fwd, &r.bwd.grad);
    let w = &s.w;
    [
        s.t1, s.t2, s.i1, s.i2, w.w1, w.w2, w.w3, w.w4, f.h1, f.a_h1, f.h2, f.a_h2, w.w5, w.w6,
        w.w7, w.w8, f.o1, f.a_o1, f.o2, f.a_o2, f.e1, f.e2, f.e_total, g.w1, g.w2, g.w3, g.w4,
        g.w5, g.w6, g.w7, g.w8,
    ]
}

/// One CSV line (no trailing newline) for one row.
pub fn csv_line(r: &Row<f64>) -> String {
    let mut line = r.iteration.to_string();
    for x in row_numbers(r) {
        line.push(',');
        line.push_str(&x.to_string());
    }
    line
}

/// Writes the header and rows `0..iterations` of training from `state` at rate `lr`.
///
/// Stops with [`Diverged`] (after writing the rows before it) at the first row that holds a
/// value that is not finite; I/O errors come back as [`std::io::Error`].
pub fn write_table(
    out: &mut dyn Write,
    state: State<f64>,
    lr: f64,
    iterations: usize,
) -> crate::error::Result<()> {
    writeln!(out, "{HEADER}")?;
    for r in Trainer::new(state, lr).take(iterations) {
        r.check_finite(lr)?;
        writeln!(out, "{}", csv_line(&r))?;
    }
    Ok(())
}

/// The whole table as a string (see [`write_table`]), or where it diverges.
pub fn table_csv(state: State<f64>, lr: f64, iterations: usize) -> Result<String, Diverged> {
    let mut s = String::from(HEADER);
    s.push('\n');
    for r in train_checked(state, lr, iterations)? {
        s.push_str(&csv_line(&r));
        s.push('\n');
    }
    Ok(s)
}

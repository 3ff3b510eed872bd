//! `gradspec backprop explain`: the derivation of `spec/backprop.md` with one iteration's
//! numbers substituted into every labelled equation — the spreadsheet, made readable.
//!
//! The spec is embedded at compile time, so the text printed is always the text the
//! conformance test checks. For every label the equation's left-hand side names a quantity
//! (`∂E_total/∂w5`, `a_h1`, …) whose value comes from the [`Row`] (computed by the labelled
//! functions); every right-hand side is printed again with each known symbol replaced by its
//! value, followed by the value itself. [`explain`] fails rather than print an equation it
//! cannot fill in, and a test runs it over every label.
use super::chain::*;
use super::forward::fwd_sigmoid;
use super::grad::update;
use super::sweep::sig;
use super::train::Row;
use crate::error::{Result, bail};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The spec, as compiled into the binary.
pub const SPEC: &str = include_str!("../../spec/backprop.md");

/// Significant digits of every substituted number.
pub const DIGITS: usize = 9;

/// The value of every symbol the spec's equations use, for one row: the row's quantities
/// under their spec names ([`Row::named_quantities`]), and the local derivatives of the weighted
/// sums, which the backward pass multiplies but a row does not keep.
pub fn symbols(r: &Row<f64>) -> BTreeMap<&'static str, f64> {
    let (s, f, w) = (&r.state, &r.fwd, &r.state.w);
    // The output sums o1, o2: ∂o/∂w is the activation the weight multiplies, ∂o/∂a_h the weight.
    let output_sums = [
        ("∂o1/∂w5", chain_do1_dw5(f.a_h1)),
        ("∂o1/∂w6", chain_do1_dw6(f.a_h2)),
        ("∂o2/∂w7", chain_do2_dw7(f.a_h1)),
        ("∂o2/∂w8", chain_do2_dw8(f.a_h2)),
        ("∂o1/∂a_h1", chain_do1_dah1(w.w5)),
        ("∂o1/∂a_h2", chain_do1_dah2(w.w6)),
        ("∂o2/∂a_h1", chain_do2_dah1(w.w7)),
        ("∂o2/∂a_h2", chain_do2_dah2(w.w8)),
    ];
    // The hidden sums h1, h2: ∂h/∂w is the input the weight multiplies.
    let hidden_sums = [
        ("∂h1/∂w1", chain_dh1_dw1(s.i1)),
        ("∂h1/∂w2", chain_dh1_dw2(s.i2)),
        ("∂h2/∂w3", chain_dh2_dw3(s.i1)),
        ("∂h2/∂w4", chain_dh2_dw4(s.i2)),
    ];
    let named = r
        .named_quantities()
        .into_iter()
        .map(|(_, symbol, v)| (symbol, v));
    named.chain(output_sums).chain(hidden_sums).collect()
}

/// A number as it appears inside a substituted expression: negative numbers in parentheses.
fn num(x: f64) -> String {
    if x < 0.0 {
        format!("({})", sig(x, DIGITS))
    } else {
        sig(x, DIGITS)
    }
}

/// Replaces every symbol of `expr` found in `syms` by its value. Symbols are identifiers
/// (`a_h1`, `E_total`) and partial derivatives written `∂X/∂Y`. Returns the text and the
/// identifiers that were not found (the caller decides whether that is an error).
pub fn substitute(expr: &str, syms: &BTreeMap<&str, f64>) -> (String, Vec<String>) {
    let chars: Vec<char> = expr.chars().collect();
    let ident_len = |from: usize| {
        let mut j = from;
        while j < chars.len()
            && (chars[j].is_ascii_alphanumeric() || chars[j] == '_')
            && (j > from || chars[j].is_ascii_alphabetic())
        {
            j += 1;
        }
        j - from
    };
    let mut out = String::new();
    let mut unknown = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '∂' {
            // ∂X/∂Y as one symbol.
            let n1 = ident_len(i + 1);
            let slash = i + 1 + n1;
            if n1 > 0 && chars.get(slash) == Some(&'/') && chars.get(slash + 1) == Some(&'∂') {
                let n2 = ident_len(slash + 2);
                let end = slash + 2 + n2;
                let token: String = chars[i..end].iter().collect();
                match syms.get(token.as_str()) {
                    Some(v) => out.push_str(&num(*v)),
                    None => {
                        out.push_str(&token);
                        unknown.push(token);
                    }
                }
                i = end;
                continue;
            }
        }
        if c.is_ascii_alphabetic() {
            let n = ident_len(i);
            let token: String = chars[i..i + n].iter().collect();
            match syms.get(token.as_str()) {
                Some(v) => out.push_str(&num(*v)),
                None => {
                    out.push_str(&token);
                    unknown.push(token);
                }
            }
            i += n;
            continue;
        }
        out.push(c);
        i += 1;
    }
    (out, unknown)
}

/// The spec's labelled equations: `(label, lines)`, each line trimmed of its indentation.
pub fn equations(spec: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut lines = spec.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(label) = label_of(line) else {
            continue;
        };
        out.push((label.to_string(), take_equation(&mut lines)));
    }
    out
}

/// Consumes the blank line(s) after a label and the equation: its first indented line and
/// any indented continuation lines starting with `=`.
fn take_equation(lines: &mut std::iter::Peekable<std::str::Lines<'_>>) -> Vec<String> {
    let mut eq = Vec::new();
    while let Some(l) = lines.peek() {
        if l.trim().is_empty() && eq.is_empty() {
            lines.next();
        } else if l.starts_with("    ") && (eq.is_empty() || l.trim_start().starts_with('=')) {
            eq.push(l.trim().to_string());
            lines.next();
        } else {
            break;
        }
    }
    eq
}

fn label_of(line: &str) -> Option<&str> {
    line.trim().strip_prefix("r[")?.strip_suffix(']')
}

/// The walk-through for one row at learning rate `lr`.
pub fn explain(r: &Row<f64>, lr: f64) -> Result<String> {
    explain_spec(SPEC, r, lr)
}

/// [`explain`] over any spec text (tests use this to feed it broken specs).
pub fn explain_spec(spec: &str, r: &Row<f64>, lr: f64) -> Result<String> {
    let syms = symbols(r);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Iteration {k} at learning rate η = {lr:?}: the weights before update {k1} \
         (row {k} of `gradspec backprop table --lr {lr:?}`).\nNumbers are rounded to \
         {DIGITS} significant digits.\n",
        k = r.iteration,
        k1 = r.iteration + 1,
    );
    let mut lines = spec.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "## Conventions" {
            break;
        }
        let Some(label) = label_of(line) else {
            let _ = writeln!(out, "{line}");
            continue;
        };
        // The equation lines are rendered below, with their numbers.
        let eq = take_equation(&mut lines);
        if eq.is_empty() {
            bail!("r[{label}] has no equation line below it");
        }
        render(&mut out, label, &eq, &syms, r, lr)?;
    }
    Ok(out.trim_end().to_string() + "\n")
}

/// Renders one labelled equation with its numbers: the equation line(s) as the spec writes
/// them, tagged with the label, then [`substituted`]'s lines.
fn render(
    out: &mut String,
    label: &str,
    eq: &[String],
    syms: &BTreeMap<&str, f64>,
    r: &Row<f64>,
    lr: f64,
) -> Result<()> {
    let lines = substituted(label, eq, syms, r, lr)?;
    let lhs = eq[0].split_once(" = ").map_or("", |(l, _)| l);
    let pad = " ".repeat(4 + lhs.chars().count() + 1);
    let _ = writeln!(out, "    {}    [{label}]", eq[0]);
    for l in &eq[1..] {
        let _ = writeln!(out, "{pad}{l}");
    }
    for l in lines {
        if let Some(rest) = l.strip_prefix("= ") {
            let _ = writeln!(out, "{pad}= {rest}");
        } else {
            let _ = writeln!(out, "    {l}");
        }
    }
    Ok(())
}

/// The numbers of one labelled equation `eq` (its lines as [`equations`] returns them) for row
/// `r` at learning rate `lr`: the right-hand side with every symbol replaced by its value,
/// each distinct form once, then `= value`. Lines that continue the equation start with
/// `"= "`; the sigmoid (a function of any `x`) and the update (one line per weight) get lines
/// of their own. Fails rather than leave a symbol it does not know.
///
/// `gradspec backprop explain` prints these lines under each equation, and the book's Part 1
/// page shows them live (the WebAssembly module calls [`label_blocks`]).
pub fn substituted(
    label: &str,
    eq: &[String],
    syms: &BTreeMap<&str, f64>,
    r: &Row<f64>,
    lr: f64,
) -> Result<Vec<String>> {
    let Some(first) = eq.first() else {
        bail!("r[{label}] has no equation line below it");
    };
    let (lhs, first_rhs) = first
        .split_once(" = ")
        .ok_or_else(|| crate::error::err!("r[{label}]: equation '{first}' has no ' = '"))?;
    let mut rhs: Vec<&str> = vec![first_rhs];
    rhs.extend(eq[1..].iter().map(|l| l.trim_start_matches('=').trim()));
    let mut out = Vec::new();
    match label {
        // The sigmoid is a function of any x: show it at the first place it is used.
        "bp.fwd.sigmoid" => {
            let mut with_x = syms.clone();
            with_x.insert("x", r.fwd.h1);
            let (sub, _) = substitute(rhs[0], &with_x);
            out.push("for example at x = h1:".to_string());
            out.push(format!(
                "σ({}) = {sub} = {}",
                num(r.fwd.h1),
                sig(fwd_sigmoid(r.fwd.h1), DIGITS)
            ));
        }
        // The update applies to each of the eight weights.
        "bp.update" => {
            let w = r.state.w.to_array();
            let g = r.bwd.grad.to_array();
            out.push(format!("with η = {lr:?}:"));
            for k in 0..8 {
                out.push(format!(
                    "w{n}⁺ = {} − {lr:?} · {} = {}",
                    sig(w[k], DIGITS),
                    num(g[k]),
                    sig(update(w[k], g[k], lr), DIGITS),
                    n = k + 1
                ));
            }
        }
        _ => {
            let Some(value) = syms.get(lhs) else {
                bail!("r[{label}]: left-hand side '{lhs}' is not a known quantity");
            };
            let (value, value_in_expr) = (sig(*value, DIGITS), num(*value));
            let mut last = String::new();
            for part in rhs {
                let (sub, unknown) = substitute(part, syms);
                if let Some(u) = unknown.first() {
                    bail!("r[{label}]: '{u}' in '{part}' is not a known quantity");
                }
                // Print each distinct substituted form once, and not the bare value twice.
                if sub != last && sub != value && sub != value_in_expr {
                    out.push(format!("= {sub}"));
                }
                last = sub;
            }
            out.push(format!("= {value}"));
        }
    }
    Ok(out)
}

/// Every labelled equation of the embedded spec with its numbers for row `r` at learning rate
/// `lr`: `(label, block)`, in the spec's order, where `block` is exactly what
/// `gradspec backprop explain` prints for that label (the equation tagged with its label, then
/// [`substituted`]'s lines). The book's Part 1 page shows these blocks live, computed by the
/// WebAssembly build of this function.
pub fn label_blocks(r: &Row<f64>, lr: f64) -> Result<Vec<(String, String)>> {
    let syms = symbols(r);
    equations(SPEC)
        .into_iter()
        .map(|(label, eq)| {
            let mut block = String::new();
            render(&mut block, &label, &eq, &syms, r, lr)?;
            Ok((label, block))
        })
        .collect()
}

//! The charts a run leaves behind (feature `plots`): learning curves, the confusion matrix
//! and a gallery of misclassified test digits.
use super::super::EpochMetrics;
use crate::data::Dataset;
use crate::error::{Result, err};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::path::Path;

fn perr<E: std::fmt::Display>(e: E) -> crate::error::Error {
    err!("chart: {e}")
}

type Chart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Draws one train and one test curve (lines with point markers) with legend entries.
fn train_test_series(
    c: &mut Chart<'_, '_>,
    rows: &[EpochMetrics],
    train_name: &str,
    train: fn(&EpochMetrics) -> f64,
    test: fn(&EpochMetrics) -> f64,
) -> Result<()> {
    for (name, color, f) in [(train_name, BLUE, train), ("test", RED, test)] {
        c.draw_series(LineSeries::new(
            rows.iter().map(|r| (r.epoch as f64, f(r))),
            color.stroke_width(2),
        ))
        .map_err(perr)?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        c.draw_series(
            rows.iter()
                .map(|r| Circle::new((r.epoch as f64, f(r)), 3, color.filled())),
        )
        .map_err(perr)?;
    }
    Ok(())
}

/// Whole epochs only on the x axis.
fn epoch_label(v: &f64) -> String {
    if v.fract().abs() < 1e-9 && *v >= 1.0 {
        format!("{}", *v as i64)
    } else {
        String::new()
    }
}

/// Loss (left) and accuracy (right) per epoch, train and test.
pub fn curves_png(path: &Path, rows: &[EpochMetrics], title: &str) -> Result<()> {
    crate::plot::render_png(path, 1200, 480, |root| {
        let (l, r) = root.split_horizontally(600);
        let n = rows.len().max(1) as f64;
        let max_loss = rows
            .iter()
            .flat_map(|r| [r.train_loss, r.test_loss])
            .fold(0.0f64, f64::max)
            .max(1e-3)
            * 1.05;
        let mut c = ChartBuilder::on(&l)
            .caption(format!("{title}: loss"), ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.5..n + 0.5, 0.0..max_loss)
            .map_err(perr)?;
        c.configure_mesh()
            .x_labels(rows.len() + 2)
            .x_label_formatter(&epoch_label)
            .x_desc("epoch")
            .y_desc("NLL loss")
            .draw()
            .map_err(perr)?;
        train_test_series(
            &mut c,
            rows,
            "train (augmented, dropout)",
            |r| r.train_loss,
            |r| r.test_loss,
        )?;
        c.configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .draw()
            .map_err(perr)?;

        // Zoom on the test accuracy, where the interesting digits are; the first epochs' train
        // accuracy may fall below the axis.
        let lo = (rows
            .iter()
            .map(|r| r.test_acc)
            .fold(100.0f64, f64::min)
            .min(99.0)
            - 0.3)
            .max(0.0);
        let mut c = ChartBuilder::on(&r)
            .caption(format!("{title}: accuracy"), ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.5..n + 0.5, lo..100.0)
            .map_err(perr)?;
        c.configure_mesh()
            .x_labels(rows.len() + 2)
            .x_label_formatter(&epoch_label)
            .x_desc("epoch")
            .y_desc("accuracy (%), zoomed")
            .draw()
            .map_err(perr)?;
        c.draw_series(LineSeries::new(
            [(0.5, 99.4), (n + 0.5, 99.4)],
            BLACK.mix(0.5).stroke_width(1),
        ))
        .map_err(perr)?
        .label("99.4% target")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5)));
        train_test_series(&mut c, rows, "train", |r| r.train_acc, |r| r.test_acc)?;
        c.configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .draw()
            .map_err(perr)?;
        Ok(())
    })
}

/// A heat map of the confusion matrix with counts; the diagonal is drawn in its own colour so
/// the off-diagonal errors stand out (their red deepens with the count).
pub fn confusion_png(path: &Path, m: &[[usize; 10]; 10]) -> Result<()> {
    let off_max = (0..10)
        .flat_map(|t| (0..10).filter(move |&p| p != t).map(move |p| (t, p)))
        .map(|(t, p)| m[t][p])
        .max()
        .unwrap_or(0)
        .max(1);
    let (cell, x0, y0) = (56i32, 80i32, 70i32);
    let size = (x0 + 10 * cell + 20, y0 + 10 * cell + 70);
    crate::plot::render_png(path, size.0 as u32, size.1 as u32, |root| {
        let font = |s: i32| ("sans-serif", s).into_font();
        let centered = |s: i32| {
            font(s)
                .color(&BLACK)
                .pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Center,
                ))
        };
        root.draw(&Text::new(
            "Confusion matrix (test set)",
            (x0 + 5 * cell, 25),
            centered(24),
        ))
        .map_err(perr)?;
        for (t, row) in m.iter().enumerate() {
            for (p, &v) in row.iter().enumerate() {
                let (x, y) = (x0 + p as i32 * cell, y0 + t as i32 * cell);
                let color = if t == p {
                    RGBColor(200, 230, 201)
                } else {
                    let a = v as f64 / off_max as f64;
                    let c = (255.0 * (1.0 - 0.8 * a)) as u8;
                    RGBColor(255, c, c)
                };
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    color.filled(),
                ))
                .map_err(perr)?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    BLACK.mix(0.2),
                ))
                .map_err(perr)?;
                let label = if v == 0 { String::new() } else { v.to_string() };
                root.draw(&Text::new(
                    label,
                    (x + cell / 2, y + cell / 2),
                    centered(15),
                ))
                .map_err(perr)?;
            }
            let c = x0 + t as i32 * cell + cell / 2;
            root.draw(&Text::new(
                t.to_string(),
                (c, y0 + 10 * cell + 15),
                centered(18),
            ))
            .map_err(perr)?;
            root.draw(&Text::new(
                t.to_string(),
                (x0 - 18, y0 + t as i32 * cell + cell / 2),
                centered(18),
            ))
            .map_err(perr)?;
        }
        root.draw(&Text::new(
            "predicted label",
            (x0 + 5 * cell, y0 + 10 * cell + 45),
            centered(18),
        ))
        .map_err(perr)?;
        root.draw(&Text::new(
            "true",
            (x0 - 55, y0 + 5 * cell - 12),
            centered(18),
        ))
        .map_err(perr)?;
        root.draw(&Text::new(
            "label",
            (x0 - 55, y0 + 5 * cell + 12),
            centered(18),
        ))
        .map_err(perr)?;
        Ok(())
    })
}

/// A gallery of up to `max` misclassified test digits, each captioned `true→predicted`.
pub fn misclassified_png(path: &Path, ds: &Dataset, predictions: &[u8], max: usize) -> Result<()> {
    let wrong: Vec<usize> = (0..ds.len())
        .filter(|&i| predictions.get(i).is_some_and(|&p| p != ds.labels[i]))
        .take(max)
        .collect();
    let cols = 10usize;
    let rows = wrong.len().div_ceil(cols).max(1);
    let (cell_w, cell_h, scale) = (96u32, 112u32, 3u32);
    let w = cols as u32 * cell_w;
    let h = rows as u32 * cell_h + 40;
    crate::plot::render_png(path, w, h, |root| {
        root.draw(&Text::new(
            format!(
                "{} misclassified test digits (true → predicted){}",
                wrong.len(),
                if wrong.len() == max {
                    ", first ones"
                } else {
                    ""
                }
            ),
            (10, 10),
            ("sans-serif", 20).into_font(),
        ))
        .map_err(perr)?;
        for (k, &i) in wrong.iter().enumerate() {
            let x0 = (k % cols) as i32 * cell_w as i32 + 6;
            let y0 = (k / cols) as i32 * cell_h as i32 + 40;
            let img = ds.image(i);
            for py in 0..28 {
                for px in 0..28 {
                    let v = 255 - img[py * 28 + px];
                    let x = x0 + (px as u32 * scale) as i32;
                    let y = y0 + (py as u32 * scale) as i32;
                    root.draw(&Rectangle::new(
                        [(x, y), (x + scale as i32, y + scale as i32)],
                        RGBColor(v, v, v).filled(),
                    ))
                    .map_err(perr)?;
                }
            }
            root.draw(&Text::new(
                format!("{} → {}", ds.labels[i], predictions[i]),
                (x0 + 14, y0 + 86),
                ("sans-serif", 18).into_font().color(&RED),
            ))
            .map_err(perr)?;
        }
        Ok(())
    })
}

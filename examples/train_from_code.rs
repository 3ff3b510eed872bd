//! Training the MNIST CNN from code, with a custom observer.
//!
//! ```sh
//! cargo run --release --example train_from_code -- [TRAIN_IMAGES] [EPOCHS]
//! ```
//!
//! Trains on the first `TRAIN_IMAGES` MNIST training images (default 8,192) for `EPOCHS`
//! epochs (default 2) with the default recipe, watching every batch through an observer of its
//! own, then reads the run's metrics back from the trainer. Nothing is written to disk. The
//! MNIST files are read from `$MNIST_DIR` or `data/mnist` (fetch them first with
//! `cargo run --release -- mnist fetch`). The last line is the SHA-256 of the trained weights
//! (as `best.safetensors` would hold them): CI compares it between builds with and without the
//! `threads` feature.
use gradspec::data::{self, Split};
use gradspec::train::recipe::Recipe;
use gradspec::train::{BatchReport, Control, EpochReport, Observer, RunOptions, Trainer};
use sha2::{Digest, Sha256};
use std::process::ExitCode;

/// Keeps the loss of every batch, and stops the run if a batch's loss exceeds a ceiling.
struct LossLog {
    losses: Vec<f64>,
    ceiling: f64,
}

impl Observer for LossLog {
    fn batch_end(&mut self, b: &BatchReport) -> Control {
        self.losses.push(b.loss);
        if b.batch.is_multiple_of(8) || b.batch == b.batches {
            println!(
                "epoch {} batch {:>3}/{}: loss {:.4}, lr {:.5}",
                b.epoch, b.batch, b.batches, b.loss, b.lr
            );
        }
        if b.loss > self.ceiling {
            Control::Stop
        } else {
            Control::Continue
        }
    }

    fn epoch_end(&mut self, t: &Trainer<'_>, r: &EpochReport) -> gradspec::Result<()> {
        println!(
            "epoch {} done after {} steps: {}",
            r.metrics.epoch,
            t.state().step,
            r.eval.line()
        );
        Ok(())
    }
}

fn arg(i: usize, default: usize) -> Result<usize, String> {
    match std::env::args().nth(i) {
        None => Ok(default),
        Some(s) => match s.parse::<usize>() {
            Ok(v) if v >= 1 => Ok(v),
            _ => Err(format!("argument {i} '{s}': expected a whole number ≥ 1")),
        },
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.chain());
            ExitCode::from(2)
        }
    }
}

fn run() -> gradspec::Result<()> {
    let images = arg(1, 8192).map_err(gradspec::Error::msg)?;
    let epochs = arg(2, 2).map_err(gradspec::Error::msg)?;
    let dir = data::resolve_dir(None);
    let full = data::load_split(&dir, Split::Train)?;
    let train = full.slice(0..images.min(full.len()));
    let test = data::load_split(&dir, Split::Test)?;

    let options = RunOptions {
        recipe: Recipe::Onecycle,
        epochs,
        seed: 1,
        train_limit: Some(train.len()),
    };
    let mut trainer = Trainer::new(options, &train);
    let mut log = LossLog {
        losses: Vec::new(),
        ceiling: 10.0,
    };
    trainer.run(&test, &mut log)?;

    // The metrics are plain data: the same rows `mnist train` writes to metrics.csv.
    for m in &trainer.state().metrics {
        println!(
            "metrics: epoch {} lr {:.5} train loss {:.4} train acc {:.2}% test loss {:.4} test acc {:.2}%",
            m.epoch, m.lr, m.train_loss, m.train_acc, m.test_loss, m.test_acc
        );
    }
    let first = log.losses.first().copied().unwrap_or(f64::NAN);
    let last = log.losses.last().copied().unwrap_or(f64::NAN);
    println!(
        "{} batches observed; loss {first:.4} → {last:.4}; parameters: {}",
        log.losses.len(),
        gradspec::cnn::params::PARAM_COUNT
    );
    let weights = gradspec::cnn::safetensors_io::to_bytes(trainer.net())?;
    let digest: String = Sha256::digest(&weights)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!(
        "weights sha256 {digest} ({} threads)",
        gradspec::par::threads()
    );
    Ok(())
}

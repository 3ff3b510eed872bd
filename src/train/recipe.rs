//! Training recipes: the source notebook's (`seed`) and this project's default (`onecycle`).
//!
//! A learning rate is a pure function of the global step, so a resumed run needs only the
//! step counter to be at the same point of its schedule.

use crate::data::Strength;

/// Which recipe to train with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recipe {
    /// Default: SGD momentum 0.9, one-cycle learning rate (linear warm-up from 0.008 to 0.08
    /// over the first 25% of steps, then cosine annealing to 0.08/1000), 8 epochs, the
    /// source's augmentations at a lighter strength (rotation within ±8°, crop p = 0.1).
    Onecycle,
    /// The source notebook exactly: SGD lr 0.01 constant, momentum 0.9, 20 epochs.
    Seed,
}

/// Batch size of every recipe (the source's).
pub const BATCH: usize = 128;

impl Recipe {
    /// Every recipe.
    pub const ALL: [Recipe; 2] = [Recipe::Onecycle, Recipe::Seed];

    /// The recipe called `name` (as [`name`](Self::name) spells it).
    pub fn from_name(name: &str) -> Option<Recipe> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Name as accepted by `--recipe`.
    pub fn name(self) -> &'static str {
        match self {
            Recipe::Onecycle => "onecycle",
            Recipe::Seed => "seed",
        }
    }

    /// Epochs when `--epochs` is not given.
    pub fn default_epochs(self) -> usize {
        match self {
            Recipe::Onecycle => 8,
            Recipe::Seed => 20,
        }
    }

    /// How strongly training images are augmented. The kinds are always the source's (a
    /// centre crop, a rotation); only their ranges are the recipe's.
    pub fn strength(self) -> Strength {
        match self {
            Recipe::Seed => Strength::SOURCE,
            // A short run needs less regularisation: ±8° instead of ±15° (docs/recipe.md
            // has the runs that chose it, records/recipe-search/ their metrics).
            Recipe::Onecycle => Strength {
                crop_prob: 0.1,
                max_angle_deg: 8.0,
            },
        }
    }

    /// SGD momentum.
    pub fn momentum(self) -> f64 {
        0.9
    }

    /// Peak (one-cycle) or constant (seed) learning rate.
    pub fn max_lr(self) -> f64 {
        match self {
            Recipe::Onecycle => 0.08,
            Recipe::Seed => 0.01,
        }
    }

    /// Learning rate of step `step` (0-based) out of `total` steps.
    pub fn lr(self, step: usize, total: usize) -> f64 {
        match self {
            Recipe::Seed => 0.01,
            Recipe::Onecycle => {
                let max = self.max_lr();
                let start = max / 10.0;
                let end = max / 1000.0;
                let total = total.max(1) as f64;
                let warm = (0.25 * total).max(1.0);
                let s = step as f64;
                if s < warm {
                    start + (max - start) * s / warm
                } else {
                    let t = ((s - warm) / (total - warm).max(1.0)).min(1.0);
                    end + (max - end) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onecycle_rises_then_anneals() {
        let r = Recipe::Onecycle;
        let total = 1000;
        assert!((r.lr(0, total) - 0.008).abs() < 1e-12);
        assert!((r.lr(250, total) - 0.08).abs() < 1e-12);
        assert!(r.lr(999, total) < 0.0001);
        assert!(r.lr(100, total) < r.lr(200, total));
        assert!(r.lr(600, total) > r.lr(800, total));
    }

    #[test]
    fn seed_is_constant() {
        assert_eq!(Recipe::Seed.lr(0, 10), 0.01);
        assert_eq!(Recipe::Seed.lr(9, 10), 0.01);
    }
}

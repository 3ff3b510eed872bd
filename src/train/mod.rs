//! Training loop, checkpoints, metrics.

//! MNIST data: IDX parsing, fetching, augmentation, batching.

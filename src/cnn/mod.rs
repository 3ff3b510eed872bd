//! Part 2: the MNIST CNN (spec/cnn.md).

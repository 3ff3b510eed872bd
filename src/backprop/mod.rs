//! Part 1: the hand-derived 2-2-2 sigmoid network (spec/backprop.md).

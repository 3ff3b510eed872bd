#!/usr/bin/env python3
"""PyTorch's figures for the performance tables (README.md and docs/performance.md),
measured like `gradspec mnist bench`.

Not a test dependency: run it by hand, right after `gradspec mnist bench`, in the same hour, so that
both see the same machine.

    python3 -m venv torchenv && torchenv/bin/pip install torch torchvision safetensors
    torchenv/bin/python benches/pytorch/bench.py --threads 2 --data-dir data/mnist

Three figures, images per second, each the median of --repeats timed runs of --seconds:
  end_to_end  the source notebook's training loop: DataLoader (batch 128, shuffle,
              num_workers 0) with its transform (RandomApply(CenterCrop(22), p=0.1),
              Resize(28), RandomRotation(15), ToTensor, Normalize), then the train step;
  train_step  forward, NLL loss, backward and SGD (lr 0.01, momentum 0.9) on a fixed batch
              of 128 real training images;
  inference   eval-mode forward of a batch of 128 under torch.no_grad().
The network is spec/cnn.md's, imported from tests/python/make_torch_fixtures.py.
"""
import argparse
import os
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


# The network of spec/cnn.md, defined once for all of the project's PyTorch scripts.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "python"))
from make_torch_fixtures import Net  # noqa: E402

torch.set_default_dtype(torch.float32)  # that module works in float64; this bench in float32


def read_idx(path, header):
    with open(path, "rb") as f:
        raw = f.read()
    if header == 16:
        n, rows, cols = struct.unpack(">III", raw[4:16])
        return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows, cols)
    return np.frombuffer(raw, dtype=np.uint8, offset=8)


def timed(step, images_per_call, seconds, repeats):
    """Median and range of images/s over `repeats` runs of at least `seconds` each."""
    step()  # warm-up
    rates = []
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            n += step()
        rates.append(n * images_per_call / (time.perf_counter() - t0))
    return statistics.median(rates), min(rates), max(rates)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data-dir", default="data/mnist")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    try:
        images = read_idx(os.path.join(a.data_dir, "train-images-idx3-ubyte"), 16)
        labels = read_idx(os.path.join(a.data_dir, "train-labels-idx1-ubyte"), 8)
    except OSError as e:
        sys.exit(f"bench.py: cannot read MNIST in {a.data_dir}: {e}")

    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.tensor((images[:128].astype(np.float32) / 255.0 - 0.1307) / 0.3081).unsqueeze(1)
    y = torch.tensor(labels[:128].astype(np.int64))

    def train_on(xb, yb):
        net.train()
        opt.zero_grad()
        F.nll_loss(net(xb), yb).backward()
        opt.step()

    def train_step():
        train_on(x, y)
        return 1

    def infer():
        net.eval()
        with torch.no_grad():
            net(x)
        return 1

    import torchvision.transforms as T
    from PIL import Image

    transform = T.Compose([
        T.RandomApply([T.CenterCrop(22)], p=0.1),
        T.Resize((28, 28)),
        T.RandomRotation((-15.0, 15.0), fill=0),
        T.ToTensor(),
        T.Normalize((0.1307,), (0.3081,)),
    ])

    class Mnist(torch.utils.data.Dataset):
        def __len__(self):
            return len(labels)

        def __getitem__(self, i):
            return transform(Image.fromarray(images[i], mode="L")), int(labels[i])

    loader = torch.utils.data.DataLoader(Mnist(), batch_size=128, shuffle=True, num_workers=0)
    batches = iter(loader)

    def end_to_end():
        nonlocal batches
        try:
            xb, yb = next(batches)
        except StopIteration:
            batches = iter(loader)
            xb, yb = next(batches)
        train_on(xb, yb)
        return 1

    print(f"PyTorch {torch.__version__}, {a.threads} thread(s), {a.seconds} s x {a.repeats}")
    for name, fn in [("end_to_end", end_to_end), ("train_step", train_step), ("inference", infer)]:
        med, lo, hi = timed(fn, 128, a.seconds, a.repeats)
        print(f"{name:<11} {med:8.0f} img/s  (range {lo:.0f}-{hi:.0f})")


if __name__ == "__main__":
    main()

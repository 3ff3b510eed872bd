"""Writes PyTorch reference values for gradspec's layers and network (tests/fixtures/torch/).

This is the *independent oracle* of `tests/cnn_torch_oracle.rs`: every forward value and every
gradient there is computed here by PyTorch's own autograd, in float64, and committed as
`.safetensors` files. `cargo test` needs neither Python nor torch; only this script does.

How to run (from the repository root; torch is installed outside the repository):

    python3 -m venv /work/torchenv
    /work/torchenv/bin/pip install torch numpy safetensors
    /work/torchenv/bin/python tests/python/make_torch_fixtures.py          # rewrite the fixtures
    /work/torchenv/bin/python tests/python/make_torch_fixtures.py --check GRADS.safetensors W.safetensors
        # optional: compare a `gradspec mnist grad --precision f64` file with torch (see --help)

The committed files were made with torch 2.15.0 (the PyPI wheel `2.15.0+cu132`, run on the CPU,
float64) and numpy 2.4.6; each file records the torch version, the numpy version and this
script's name in its metadata (`torch_version`, ...). Regenerating with the same torch version
gives the same bytes (the header is written sorted); another version may differ in the last
bits, far below the test's tolerance.

Inputs are *generated*, not stored, to keep the files small (well under 2 MB in all): every
input tensor `NAME` of a layer fixture is described by the metadata entry `gen.NAME = "TAG LO
SPAN N"`, meaning `N` values `v[i] = LO + SPAN * (splitmix64((TAG << 32) | i) >> 44) / 2**20`.
With `LO` and `SPAN` powers of two (or 0), every value is an exact binary fraction with at most
20 significant bits, so Rust regenerates bit-identical inputs (`generate` in the Rust test). The
outputs (forward values, gradients) are stored as F64 tensors. The whole-network fixture stores
its inputs (real MNIST test images, normalised in float64) and its weights.

Seeds: torch.manual_seed(0) before building the network of net.safetensors; the generator tags
are fixed in this file. Nothing else is random.

Every layer check uses a random upstream gradient `g`: the scalar that is back-propagated is
`L = sum(g * y)`, never a plain sum.
"""
import argparse
import gzip
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "torch")
M64 = (1 << 64) - 1


def splitmix64(z):
    """SplitMix64's output function on a numpy uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class Fixture:
    """One output file: generated inputs (metadata) plus stored tensors."""

    def __init__(self, name):
        self.name = name
        self.tensors = {}
        self.meta = {}

    def gen(self, name, shape, tag, lo, span):
        """Generated input tensor; records how to regenerate it."""
        n = int(np.prod(shape))
        i = np.arange(n, dtype=np.uint64) | np.uint64(tag << 32)
        k = (splitmix64(i) >> np.uint64(44)).astype(np.float64)
        v = lo + span * (k / float(1 << 20))
        self.meta[f"gen.{name}"] = f"{tag} {lo!r} {span!r} {n}"
        return torch.tensor(v.reshape(shape), dtype=torch.float64)

    def put(self, name, t):
        t = t.detach()
        if t.dtype.is_floating_point:
            t = t.to(torch.float64)
        self.tensors[name] = t.contiguous().clone()

    def write(self, notes=""):
        meta = {
            "format": "pt",
            "generator": "tests/python/make_torch_fixtures.py",
            "torch_version": torch.__version__,
            "numpy_version": np.__version__,
            "dtype": "float64",
        }
        if notes:
            meta["notes"] = notes
        meta.update(self.meta)
        path = os.path.join(OUT, self.name)
        save_sorted(self.tensors, path, meta)
        return path


DTYPES = {torch.float64: "F64", torch.int64: "I64"}


def save_sorted(tensors, path, meta):
    """Writes a .safetensors file with the header's keys sorted, so that running this script
    again gives the same bytes (safetensors.torch.save_file orders its metadata at random).
    The format: 8-byte little-endian header length, JSON header, then the data."""
    header, blobs, offset = {"__metadata__": dict(sorted(meta.items()))}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        b = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def backprop(y, g, *leaves):
    """Back-propagates L = sum(g * y) and returns the gradients of `leaves`."""
    return torch.autograd.grad((g * y).sum(), leaves)


# ---------------------------------------------------------------------------------------------
# Layers, at the network's real shapes, batch 2 (each with its own generator tags).
# ---------------------------------------------------------------------------------------------

CONVS = [  # name, cin, cout, k, h (square input), batch: one image for the three largest
    ("conv1", 1, 16, 3, 28, 1),  # (their outputs alone would be 2 MB at two images); the
    ("conv2", 16, 32, 3, 26, 1),  # per-image loop is the same code for every shape, and the
    ("conv3", 32, 8, 1, 24, 1),  # whole-network fixture runs them on 10 images
    ("conv4", 8, 16, 3, 12, 2),
    ("conv5", 16, 32, 3, 10, 2),
    ("conv6", 32, 16, 1, 8, 2),
    ("conv7", 16, 32, 3, 4, 2),
]


def conv_fixture():
    fx = Fixture("conv.safetensors")
    for j, (name, cin, cout, k, h, n) in enumerate(CONVS):
        t = 100 + 10 * j
        x = fx.gen(f"{name}.x", (n, cin, h, h), t, -1.0, 4.0).requires_grad_()
        # weights in [-1/4, 1/4), biases in [-1/2, 1/2): the size of PyTorch's init
        w = fx.gen(f"{name}.w", (cout, cin, k, k), t + 1, -0.25, 0.5).requires_grad_()
        b = fx.gen(f"{name}.b", (cout,), t + 2, -0.5, 1.0).requires_grad_()
        y = F.conv2d(x, w, b)
        g = fx.gen(f"{name}.g", tuple(y.shape), t + 3, -1.0, 2.0)
        dx, dw, db = backprop(y, g, x, w, b)
        fx.put(f"{name}.y", y)
        fx.put(f"{name}.dx", dx)
        fx.put(f"{name}.dw", dw)
        fx.put(f"{name}.db", db)
    return fx.write("F.conv2d(x, w, b), stride 1, no padding; L = sum(g*y)")


BNS = [  # name, channels, h, batch: BatchNorm2d(16) and (32) at the real shapes of bn4 and bn5
    # (bn1 and bn2, on 26x26 and 24x24, would take 0.9 MB; the whole-network fixture checks
    # them on 10 images, and the code is the same for every shape)
    ("bn4", 16, 10, 2),
    ("bn5", 32, 8, 2),
]


def batchnorm_fixture():
    fx = Fixture("batchnorm.safetensors")
    for j, (name, c, h, n) in enumerate(BNS):
        t = 200 + 10 * j
        # post-ReLU-like inputs in [-1/2, 7/2): a mean that is not 0
        x = fx.gen(f"{name}.x", (n, c, h, h), t, -0.5, 4.0).requires_grad_()
        gamma = fx.gen(f"{name}.gamma", (c,), t + 1, 0.5, 1.0)
        beta = fx.gen(f"{name}.beta", (c,), t + 2, -0.5, 1.0)
        bn = nn.BatchNorm2d(c)  # eps 1e-5, momentum 0.1
        with torch.no_grad():
            bn.weight.copy_(gamma)
            bn.bias.copy_(beta)
        bn.train()
        y = bn(x)
        g = fx.gen(f"{name}.g", tuple(y.shape), t + 3, -1.0, 2.0)
        dx, dgamma, dbeta = backprop(y, g, x, bn.weight, bn.bias)
        fx.put(f"{name}.y", y)
        fx.put(f"{name}.dx", dx)
        fx.put(f"{name}.dgamma", dgamma)
        fx.put(f"{name}.dbeta", dbeta)
    # Running statistics: BatchNorm2d(32) on 8x8, three train-mode passes over batches of 2, 3
    # and 2 images, starting from non-default running values.
    bn = nn.BatchNorm2d(32)
    with torch.no_grad():
        bn.running_mean.copy_(fx.gen("running.mean0", (32,), 250, -0.5, 1.0))
        bn.running_var.copy_(fx.gen("running.var0", (32,), 251, 0.5, 1.0))
    bn.train()
    for step, n in enumerate([2, 3, 2]):
        x = fx.gen(f"running.x{step + 1}", (n, 32, 8, 8), 252 + step, -0.5, 4.0)
        with torch.no_grad():
            bn(x)
        fx.put(f"running.mean{step + 1}", bn.running_mean)
        fx.put(f"running.var{step + 1}", bn.running_var)
        fx.put(f"running.num_batches_tracked{step + 1}", bn.num_batches_tracked.reshape(()))
    return fx.write("nn.BatchNorm2d(C) in train mode, eps 1e-5, momentum 0.1; L = sum(g*y)")


def relu_pool_fixture():
    fx = Fixture("relu_pool.safetensors")
    # ReLU (elementwise, so the shape is conv7's output, the smallest), with some exact zeros
    # (derivative 0 there).
    x = fx.gen("relu.x", (2, 32, 2, 2), 300, -1.0, 2.0)
    x.view(-1)[::37] = 0.0  # the Rust test reads this step from the metadata
    fx.meta["zero.relu.x"] = "37"
    x.requires_grad_()
    y = torch.relu(x)
    g = fx.gen("relu.g", tuple(y.shape), 301, -1.0, 2.0)
    (dx,) = backprop(y, g, x)
    fx.put("relu.y", y)
    fx.put("relu.dx", dx)
    # Max pooling at both of the network's shapes (conv3 and conv6 outputs), and the average
    # pooling after conv7.
    for name, c, h, n, t in [("pool1", 8, 24, 1, 310), ("pool2", 16, 8, 2, 320)]:
        x = fx.gen(f"{name}.x", (n, c, h, h), t, -2.0, 4.0).requires_grad_()
        y, idx = F.max_pool2d(x, 2, 2, return_indices=True)
        g = fx.gen(f"{name}.g", tuple(y.shape), t + 1, -1.0, 2.0)
        (dx,) = backprop(y, g, x)
        fx.put(f"{name}.y", y)
        fx.put(f"{name}.dx", dx)
        fx.put(f"{name}.indices", idx)
    x = fx.gen("avgpool.x", (2, 32, 2, 2), 330, -2.0, 4.0).requires_grad_()
    y = F.avg_pool2d(x, 2, 2)
    g = fx.gen("avgpool.g", tuple(y.shape), 331, -1.0, 2.0)
    (dx,) = backprop(y, g, x)
    fx.put("avgpool.y", y)
    fx.put("avgpool.dx", dx)
    return fx.write("torch.relu, F.max_pool2d(x, 2, 2), F.avg_pool2d(x, 2, 2); L = sum(g*y)")


# Max-pool windows (one window each, row-major (0,0), (0,1), (1,0), (1,1)) that probe the tie
# rule and NaN. `nan` is float("nan").
NAN, INF = float("nan"), float("inf")
TIE_WINDOWS = [
    ("all equal", [1.0, 1.0, 1.0, 1.0]),
    ("tie (0,0) and (1,1)", [2.0, 1.0, 0.0, 2.0]),
    ("tie (0,1) and (1,0)", [0.0, 3.0, 3.0, 1.0]),
    ("tie (1,0) and (1,1)", [0.0, -1.0, 5.0, 5.0]),
    ("-0 before +0", [-0.0, 0.0, -1.0, -2.0]),
    ("+0 before -0", [0.0, -0.0, -1.0, -2.0]),
    ("all -inf", [-INF, -INF, -INF, -INF]),
    ("+inf tie", [INF, 1.0, INF, 0.0]),
    ("NaN at (0,0)", [NAN, 1.0, 2.0, 3.0]),
    ("NaN at (0,1)", [1.0, NAN, 2.0, 3.0]),
    ("NaN at (1,0)", [3.0, 2.0, NAN, 1.0]),
    ("NaN at (1,1)", [3.0, 2.0, 1.0, NAN]),
    ("NaN after +inf", [INF, NAN, 0.0, 0.0]),
    ("two NaNs (0,1), (1,0)", [1.0, NAN, NAN, 2.0]),
    ("two NaNs (0,0), (1,1)", [NAN, 5.0, 1.0, NAN]),
    ("four NaNs", [NAN, NAN, NAN, NAN]),
]


def ties_fixture():
    """Max-pool ties and NaN, plus ReLU at NaN, in torch's own words (CPU, float64)."""
    fx = Fixture("maxpool_ties.safetensors")
    k = len(TIE_WINDOWS)
    x = torch.zeros(1, 1, 2, 2 * k)
    for j, (_, v) in enumerate(TIE_WINDOWS):
        x[0, 0, 0, 2 * j], x[0, 0, 0, 2 * j + 1] = v[0], v[1]
        x[0, 0, 1, 2 * j], x[0, 0, 1, 2 * j + 1] = v[2], v[3]
    x.requires_grad_()
    y, idx = F.max_pool2d(x, 2, 2, return_indices=True)
    g = torch.arange(1, k + 1, dtype=torch.float64).reshape(y.shape)
    (dx,) = backprop(y, g, x)
    fx.put("x", x)
    fx.put("y", y)
    fx.put("indices", idx)
    fx.put("dx", dx)
    # ReLU at NaN, +-0 and +-inf: forward and what the gradient does there.
    r = torch.tensor([NAN, 0.0, -0.0, INF, -INF, 1.0, -1.0]).requires_grad_()
    ry = torch.relu(r)
    (rdx,) = torch.autograd.grad(ry, r, torch.ones_like(ry))
    fx.put("relu.x", r)
    fx.put("relu.y", ry)
    fx.put("relu.dx", rdx)
    fx.meta["windows"] = "; ".join(name for name, _ in TIE_WINDOWS)
    lines = []
    for j, (name, _) in enumerate(TIE_WINDOWS):
        a, col = divmod(int(idx.view(-1)[j]), 2 * k)
        b = col - 2 * j
        lines.append(f"  {name:<24} -> y = {float(y.detach().view(-1)[j])!r:<6} winner ({a},{b})")
    print("max_pool2d, one 2x2 window each:\n" + "\n".join(lines))
    print(f"relu at {r.tolist()}: y = {ry.tolist()}, dy/dx = {rdx.tolist()}")
    return fx.write("F.max_pool2d(x, 2, 2) on hand-made windows; g[j] = j + 1")


def linear_loss_fixture():
    fx = Fixture("linear_loss.safetensors")
    x = fx.gen("fc.x", (2, 32), 400, -2.0, 4.0).requires_grad_()
    w = fx.gen("fc.w", (10, 32), 401, -0.25, 0.5).requires_grad_()
    b = fx.gen("fc.b", (10,), 402, -0.5, 1.0).requires_grad_()
    y = F.linear(x, w, b)
    g = fx.gen("fc.g", tuple(y.shape), 403, -1.0, 2.0)
    dx, dw, db = backprop(y, g, x, w, b)
    fx.put("fc.y", y)
    fx.put("fc.dx", dx)
    fx.put("fc.dw", dw)
    fx.put("fc.db", db)
    # log_softmax on ordinary, large and widely spread logits (rows), with labels for NLL.
    z = fx.gen("ls.z", (6, 10), 410, -4.0, 8.0)
    z[1] += 1000.0  # large, equal offset: exp(z) overflows without the max shift
    z[2] *= 128.0  # spread over [-512, 512)
    z[3] -= 1000.0
    z[4] = z[4] * 64.0 + 4096.0
    z[5, 3] += 64.0  # one dominant class: its probability is 1 to double precision
    z.requires_grad_()
    logp = F.log_softmax(z, dim=1)
    g = fx.gen("ls.g", tuple(logp.shape), 411, -1.0, 2.0)
    (dz,) = backprop(logp, g, z)
    fx.put("ls.z", z)  # stored as well: the offsets above are applied here, not in Rust
    fx.put("ls.logp", logp)
    fx.put("ls.dz", dz)
    labels = torch.tensor([3, 0, 9, 5, 1, 3])
    z2 = z.detach().clone().requires_grad_()
    loss = F.nll_loss(F.log_softmax(z2, dim=1), labels)  # reduction 'mean'
    (dz2,) = torch.autograd.grad(loss, z2)
    fx.put("nll.labels", labels)
    fx.put("nll.loss", loss.reshape(()))
    fx.put("nll.dz", dz2)
    return fx.write("F.linear; F.log_softmax(z, 1) with L = sum(g*logp); F.nll_loss mean")


# ---------------------------------------------------------------------------------------------
# The network of spec/cnn.md, with state_dict names equal to gradspec's (src/cnn/params.rs).
# ---------------------------------------------------------------------------------------------


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3)
        self.bn1 = nn.BatchNorm2d(16)
        self.drop1 = nn.Dropout(0.05)
        self.conv2 = nn.Conv2d(16, 32, 3)
        self.bn2 = nn.BatchNorm2d(32)
        self.drop2 = nn.Dropout(0.05)
        self.conv3 = nn.Conv2d(32, 8, 1)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.conv4 = nn.Conv2d(8, 16, 3)
        self.bn4 = nn.BatchNorm2d(16)
        self.drop4 = nn.Dropout(0.05)
        self.conv5 = nn.Conv2d(16, 32, 3)
        self.bn5 = nn.BatchNorm2d(32)
        self.drop5 = nn.Dropout(0.05)
        self.conv6 = nn.Conv2d(32, 16, 1)
        self.pool2 = nn.MaxPool2d(2, 2)
        self.conv7 = nn.Conv2d(16, 32, 3)
        self.gap = nn.AvgPool2d(2, 2)
        self.fc1 = nn.Linear(32, 10)

    def forward(self, x):
        x = self.drop1(self.bn1(F.relu(self.conv1(x))))
        x = self.drop2(self.bn2(F.relu(self.conv2(x))))
        x = self.pool1(self.conv3(x))
        x = self.drop4(self.bn4(F.relu(self.conv4(x))))
        x = self.drop5(self.bn5(F.relu(self.conv5(x))))
        x = self.pool2(self.conv6(x))
        x = self.gap(F.relu(self.conv7(x)))
        return F.log_softmax(self.fc1(x.view(-1, 32)), dim=1)

    def train_without_dropout(self):
        """BatchNorm in training mode, dropout off (gradspec's Mode::Train { dropout: None })."""
        self.train()
        for m in self.modules():
            if isinstance(m, nn.Dropout):
                m.eval()
        return self


def mnist_images(start, count):
    """Test images start..start+count of the committed fixture, normalised in float64."""
    with gzip.open(os.path.join(ROOT, "tests", "fixtures", "mnist", "t10k-images-idx3-ubyte.gz")) as f:
        raw = f.read()
    with gzip.open(os.path.join(ROOT, "tests", "fixtures", "mnist", "t10k-labels-idx1-ubyte.gz")) as f:
        lab = f.read()
    px = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)[start:start + count]
    y = np.frombuffer(lab, dtype=np.uint8, offset=8)[start:start + count]
    x = (px.astype(np.float64) / 255.0 - 0.1307) / 0.3081
    return torch.tensor(x), torch.tensor(y.astype(np.int64))


def make_net():
    torch.manual_seed(0)
    net = Net().double()
    with torch.no_grad():  # non-default BatchNorm affine parameters and running statistics
        for j, bn in enumerate([net.bn1, net.bn2, net.bn4, net.bn5]):
            c = bn.num_features
            bn.weight.copy_(torch.rand(c) + 0.5)
            bn.bias.copy_(torch.rand(c) * 0.4 - 0.2)
            bn.running_mean.copy_(torch.rand(c) - 0.5)
            bn.running_var.copy_(torch.rand(c) + 0.5)
    return net


def net_fixture():
    """Whole network: loss, log-probabilities and every gradient entry on 10 real test images
    (so gradspec's chunks of 8 and 2 are both used), BatchNorm in train mode, dropout off; then
    two more train-mode passes (images 0..4, then 4..7 of x) for the running statistics."""
    fx = Fixture("net.safetensors")
    net = make_net()
    for k, v in net.state_dict().items():
        fx.put(k, v)
    x, y = mnist_images(0, 10)
    net.train_without_dropout()
    logp = net(x)
    loss = F.nll_loss(logp, y)
    names = [k for k, _ in net.named_parameters()]
    grads = torch.autograd.grad(loss, list(net.parameters()))
    fx.put("x", x)
    fx.put("labels", y)
    fx.put("loss", loss.reshape(()))
    fx.put("logp", logp)
    for k, gr in zip(names, grads):
        fx.put(f"grad.{k}", gr)
    for start, end in [(0, 4), (4, 7)]:
        with torch.no_grad():
            net(x[start:end])
    for k, v in net.state_dict().items():
        if "running" in k or "num_batches" in k:
            fx.put(f"after3.{k}", v)
    net.eval()  # BatchNorm with those running statistics, dropout the identity
    with torch.no_grad():
        fx.put("after3.eval_logp", net(x))
    print(f"net: loss {loss.item():.17g} on test images 0..10, labels {y.tolist()}")
    return fx.write("Net of spec/cnn.md, train mode, dropout off; mean NLL over x; after3.* = "
                    "buffers after three train-mode passes over x, x[0:4], x[4:7]; after3.eval_logp = eval-mode log-probabilities of x after them")


def sgd_fixture():
    """Three steps of torch.optim.SGD(lr=0.05, momentum=0.9) over all 24 parameter tensors,
    from generated parameters and a generated gradient sequence."""
    fx = Fixture("sgd.safetensors")
    shapes = [(k, tuple(v.shape)) for k, v in Net().named_parameters()]
    params = [nn.Parameter(fx.gen(f"theta0.{k}", s, 500 + j, -0.5, 1.0))
              for j, (k, s) in enumerate(shapes)]
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9)
    for step in range(1, 4):
        for j, ((k, s), p) in enumerate(zip(shapes, params)):
            p.grad = fx.gen(f"grad{step}.{k}", s, 500 + 100 * step + j, -1.0, 2.0)
        opt.step()
    for (k, _), p in zip(shapes, params):
        fx.put(f"theta3.{k}", p)
        # the momentum buffers of three layers only (all 24 would add 130 KiB): enough to pin
        # torch's buffer convention (v = mu*v + g, not scaled by lr), which theta3 implies anyway
        if k.split(".")[0] in ("bn1", "conv6", "fc1"):
            fx.put(f"momentum3.{k}", opt.state[p]["momentum_buffer"])
    fx.meta["lr"] = "0.05"
    fx.meta["momentum"] = "0.9"
    return fx.write("torch.optim.SGD(params, lr=0.05, momentum=0.9), three steps")


def check_grad_file(grad_path, weights_path, start, count):
    """Compares `gradspec mnist grad --precision f64` output with torch on the same images."""
    grads = load_file(grad_path)
    sd = load_file(weights_path)
    net = Net().double()
    net.load_state_dict({k: v.to(torch.float64) if v.dtype.is_floating_point else v
                         for k, v in sd.items()})
    x, y = mnist_images(start, count)
    net.train_without_dropout()
    loss = F.nll_loss(net(x), y)
    ref = torch.autograd.grad(loss, list(net.parameters()))
    worst = 0.0
    for (k, _), r in zip(net.named_parameters(), ref):
        a = grads[k]
        assert a.dtype == torch.float64, f"{k}: dtype {a.dtype}, expected float64"
        rel = float((a - r).abs().max() / r.abs().max())
        worst = max(worst, rel)
        print(f"{k:<14} max |gradspec - torch| / max |torch| = {rel:.3g}")
    print(f"worst: {worst:.3g}")
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", nargs=2, metavar=("GRADS", "WEIGHTS"),
                    help="compare a gradspec f64 gradient file (mnist grad --precision f64 "
                         "--split test --start S --count N) with torch, instead of writing fixtures")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--count", type=int, default=16)
    a = ap.parse_args()
    if a.check:
        worst = check_grad_file(a.check[0], a.check[1], a.start, a.count)
        sys.exit(0 if worst <= 1e-10 else 1)
    os.makedirs(OUT, exist_ok=True)
    print(f"torch {torch.__version__}, numpy {np.__version__}")
    total = 0
    for make in [conv_fixture, batchnorm_fixture, relu_pool_fixture, ties_fixture,
                 linear_loss_fixture, net_fixture, sgd_fixture]:
        path = make()
        size = os.path.getsize(path)
        total += size
        print(f"wrote {os.path.relpath(path, ROOT)} ({size / 1024:.0f} KiB)")
    print(f"total {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()

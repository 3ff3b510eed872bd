"""Writes PyTorch **float32** reference values for gradspec's f32 training code
(tests/fixtures/torch_f32/), the oracle of `tests/cnn_torch_f32_oracle.rs`.

The float64 fixtures of make_torch_fixtures.py hold gradspec's f64 path to PyTorch; these hold
the f32 code that trains (the SIMD kernels on every instruction set, Winograd and direct, the
fused BatchNorm passes, the reference im2col + GEMM path) to PyTorch's own f32 results, within
bounds derived from f32 rounding (stated in the Rust test). `cargo test` needs neither Python
nor torch; only this script does.

How to run (from the repository root; torch lives outside the repository):

    /work/torchenv/bin/python tests/python/make_torch_f32_fixtures.py

What it writes (all under tests/fixtures/torch_f32/):

- `conv.safetensors`: for each of the seven convolutions at the network's shapes, 2 images:
  `F.conv2d(x, w, b)` (y), and with `L = sum(g * y)` the gradients dx, dw, db; all F32.
- `bn.safetensors`: for each of the four `conv -> ReLU -> BatchNorm2d` blocks (bn1, bn2, bn4,
  bn5) at the network's shapes, 2 images: `y = BatchNorm2d(relu(z))` in train mode, and with
  `L = sum(g * y)` the gradients dz, dgamma, dbeta; all F32.
- `net.safetensors`: the network of spec/cnn.md in float32 (torch.manual_seed(0) and the
  BatchNorm parameters of make_torch_fixtures.make_net, rounded to f32), 10 real MNIST test
  images (normalised in float64, rounded to f32), train mode, dropout off: the f32 loss and
  every f32 gradient (`grad32.*`), and the same weights and images run in float64 (`grad64.*`,
  `loss64`), which the Rust test uses as the exact value.
- `onecycle.txt`: the learning rate at every step of the default recipe's run (8 epochs of
  469 batches) from `torch.optim.lr_scheduler.OneCycleLR` with the recipe's arguments, and
  from `SequentialLR(LinearLR, CosineAnnealingLR)`, in f64 text with 17 significant digits.
- `MANIFEST.txt`: SHA-256 of every fixture file, of every generated input (its f32
  little-endian bytes) and of every stored input, and the generating arguments of each
  fixture as one canonical line; the Rust test recomputes all of them.

Inputs of conv and bn are *generated*, not stored: `N` values `v[i] = LO + SPAN *
(splitmix64((TAG << 32) | i) >> 44) / 2**20` (the generator of make_torch_fixtures.py). With
`LO` and `SPAN` powers of two, every value has at most 20 significant bits, so it is exact in
f32 and Rust regenerates it bit for bit.

Determinism: one thread (`torch.set_num_threads(1)`), and oneDNN (mkldnn) off, so that
convolutions run through PyTorch's own im2col + GEMM: every output is then an ordinary sum of
products in some order, the model the Rust test's bounds assume. The committed files were
made with torch 2.15.0 (PyPI wheel `2.15.0+cu132`, CPU) and numpy 2.4.6.
"""
import hashlib
import os
import struct
import json
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_torch_fixtures as m64  # noqa: E402  (Net, make_net, mnist_images, the generator)

torch.set_default_dtype(torch.float32)  # make_torch_fixtures sets float64 on import
torch.set_num_threads(1)
torch.backends.mkldnn.enabled = False

OUT = os.path.join(m64.ROOT, "tests", "fixtures", "torch_f32")
DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}

# name, cin, cout, k, h (square input): the network's seven convolutions (spec/cnn.md)
CONVS = [
    ("conv1", 1, 16, 3, 28),
    ("conv2", 16, 32, 3, 26),
    ("conv3", 32, 8, 1, 24),
    ("conv4", 8, 16, 3, 12),
    ("conv5", 16, 32, 3, 10),
    ("conv6", 32, 16, 1, 8),
    ("conv7", 16, 32, 3, 4),
]
CONV_IMAGES = 2
# name, channels, h (square plane): the four conv -> ReLU -> BatchNorm blocks
BNS = [("bn1", 16, 26), ("bn2", 32, 24), ("bn4", 16, 10), ("bn5", 32, 8)]
BN_IMAGES = 2
NET_IMAGES = 10
# The default recipe (src/train/recipe.rs): onecycle, 8 epochs, 60,000 images in batches of 128.
EPOCHS, STEPS_PER_EPOCH = 8, (60000 + 127) // 128
MAX_LR, DIV, FINAL_DIV, PCT_START = 0.08, 10.0, 100.0, 0.25

manifest = []


def sha(b):
    return hashlib.sha256(b).hexdigest()


def f32_bytes(t):
    return t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()


class Fixture:
    def __init__(self, name):
        self.name, self.tensors, self.meta = name, {}, {}

    def gen(self, name, shape, tag, lo, span):
        n = int(np.prod(shape))
        i = np.arange(n, dtype=np.uint64) | np.uint64(tag << 32)
        k = (m64.splitmix64(i) >> np.uint64(44)).astype(np.float64)
        v = lo + span * (k / float(1 << 20))
        t = torch.tensor(v.reshape(shape), dtype=torch.float32)
        assert np.array_equal(t.double().numpy().reshape(-1), v), "input not exact in f32"
        spec = f"{tag} {lo!r} {span!r} {n}"
        self.meta[f"gen.{name}"] = spec
        manifest.append(f"input {self.name} {name} gen {spec} sha256 {sha(f32_bytes(t))}")
        return t

    def stored_input(self, name, t):
        self.put(name, t)
        manifest.append(f"input {self.name} {name} stored sha256 {sha(f32_bytes(t))}")

    def put(self, name, t):
        self.tensors[name] = t.detach().contiguous().clone()

    def write(self, args, notes):
        meta = {
            "format": "pt",
            "generator": "tests/python/make_torch_f32_fixtures.py",
            "torch_version": torch.__version__,
            "numpy_version": np.__version__,
            "notes": notes,
            "args": args,
        }
        meta.update(self.meta)
        path = os.path.join(OUT, self.name)
        header, blobs, offset = {"__metadata__": dict(sorted(meta.items()))}, [], 0
        for name in sorted(self.tensors):
            t = self.tensors[name]
            a = t.numpy()
            b = a.astype(a.dtype.newbyteorder("<")).tobytes()
            header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                            "data_offsets": [offset, offset + len(b)]}
            blobs.append(b)
            offset += len(b)
        h = json.dumps(header, separators=(",", ":")).encode()
        h += b" " * (-len(h) % 8)
        data = struct.pack("<Q", len(h)) + h + b"".join(blobs)
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)
        manifest.append(f"args {self.name} sha256 {sha(args.encode())} {args}")
        manifest.append(f"file {self.name} sha256 {sha(data)}")


def backprop(y, g, *leaves):
    return torch.autograd.grad((g * y).sum(), leaves)


def conv_fixture():
    fx = Fixture("conv.safetensors")
    args = []
    for j, (name, cin, cout, k, h) in enumerate(CONVS):
        t, n = 1000 + 10 * j, CONV_IMAGES
        args.append(f"{name} {cin} {cout} {k} {h} {n} {t}")
        x = fx.gen(f"{name}.x", (n, cin, h, h), t, -1.0, 4.0).requires_grad_()
        w = fx.gen(f"{name}.w", (cout, cin, k, k), t + 1, -0.25, 0.5).requires_grad_()
        b = fx.gen(f"{name}.b", (cout,), t + 2, -0.5, 1.0).requires_grad_()
        y = F.conv2d(x, w, b)
        g = fx.gen(f"{name}.g", tuple(y.shape), t + 3, -1.0, 2.0)
        dx, dw, db = backprop(y, g, x, w, b)
        for key, v in [("y", y), ("dx", dx), ("dw", dw), ("db", db)]:
            assert v.dtype == torch.float32
            fx.put(f"{name}.{key}", v)
    fx.write("; ".join(args), "F.conv2d(x, w, b) in float32, stride 1, no padding; L = sum(g*y); "
             "args: name cin cout k h images tag")


def bn_fixture():
    fx = Fixture("bn.safetensors")
    args = []
    for j, (name, c, h) in enumerate(BNS):
        t, n = 2000 + 10 * j, BN_IMAGES
        args.append(f"{name} {c} {h} {n} {t}")
        # a conv output: about half negative (ReLU's zeros), the rest up to 3
        z = fx.gen(f"{name}.z", (n, c, h, h), t, -2.0, 4.0).requires_grad_()
        gamma = fx.gen(f"{name}.gamma", (c,), t + 1, 0.5, 1.0)
        beta = fx.gen(f"{name}.beta", (c,), t + 2, -0.5, 1.0)
        bn = nn.BatchNorm2d(c)  # eps 1e-5
        with torch.no_grad():
            bn.weight.copy_(gamma)
            bn.bias.copy_(beta)
        bn.train()
        y = bn(F.relu(z))
        g = fx.gen(f"{name}.g", tuple(y.shape), t + 3, -1.0, 2.0)
        dz, dgamma, dbeta = backprop(y, g, z, bn.weight, bn.bias)
        for key, v in [("y", y), ("dz", dz), ("dgamma", dgamma), ("dbeta", dbeta)]:
            assert v.dtype == torch.float32
            fx.put(f"{name}.{key}", v)
    fx.write("; ".join(args), "BatchNorm2d(C)(relu(z)) in float32, train mode, eps 1e-5; "
             "L = sum(g*y); args: name channels h images tag")


def net_fixture():
    fx = Fixture("net.safetensors")
    net64 = m64.make_net()  # float64, torch.manual_seed(0)
    net32 = m64.Net().float()
    net32.load_state_dict({k: v.float() for k, v in net64.state_dict().items()})
    # the f64 twin runs the very same (f32-rounded) weights
    net64.load_state_dict({k: v.double() for k, v in net32.state_dict().items()})
    for k, v in net32.named_parameters():
        fx.stored_input(f"param.{k}", v)
    x64, labels = m64.mnist_images(0, NET_IMAGES)
    x = x64.float()
    fx.stored_input("x", x)
    fx.put("labels", labels)
    losses = {}
    for tag, net, xin in [("32", net32, x), ("64", net64, x.double())]:
        net.train_without_dropout()
        loss = F.nll_loss(net(xin), labels)
        names = [k for k, _ in net.named_parameters()]
        grads = torch.autograd.grad(loss, list(net.parameters()))
        fx.put(f"loss{tag}", loss.detach().reshape(()))
        for k, gr in zip(names, grads):
            fx.put(f"grad{tag}.{k}", gr)
        losses[tag] = loss.item()
    print(f"net: f32 loss {losses['32']!r}, f64 loss {losses['64']!r}")
    fx.write(f"make_net seed 0; test images 0..{NET_IMAGES}; train mode, dropout off",
             "the network of spec/cnn.md: float32 (grad32, loss32) and the same f32 weights "
             "and images in float64 (grad64, loss64); mean NLL; train mode, dropout off")


def onecycle_fixture():
    total = EPOCHS * STEPS_PER_EPOCH
    args = (f"max_lr {MAX_LR!r} total_steps {total} pct_start {PCT_START!r} anneal_strategy cos "
            f"div_factor {DIV!r} final_div_factor {FINAL_DIV!r} three_phase False "
            f"cycle_momentum False")

    def run(make):
        p = nn.Parameter(torch.zeros(1, dtype=torch.float64))
        opt = torch.optim.SGD([p], lr=MAX_LR, momentum=0.9)
        sched = make(opt)
        lrs = []
        for _ in range(total):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return lrs

    one = run(lambda opt: torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=MAX_LR, total_steps=total, pct_start=PCT_START, anneal_strategy="cos",
        div_factor=DIV, final_div_factor=FINAL_DIV, three_phase=False, cycle_momentum=False))
    warm = int(PCT_START * total)
    assert warm == PCT_START * total
    seq = run(lambda opt: torch.optim.lr_scheduler.SequentialLR(opt, [
        torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / DIV, end_factor=1.0,
                                          total_iters=warm),
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warm,
                                                   eta_min=MAX_LR / DIV / FINAL_DIV),
    ], milestones=[warm]))
    lines = [
        "# Learning rate per step (0-based) of the onecycle recipe's default run, from",
        "# tests/python/make_torch_f32_fixtures.py with torch " + torch.__version__ + ".",
        "# onecycle: torch.optim.lr_scheduler.OneCycleLR(" + args + ")",
        f"# sequential: SequentialLR([LinearLR(start_factor=1/{DIV!r}, total_iters={warm}), "
        f"CosineAnnealingLR(T_max={total - warm}, eta_min={MAX_LR / DIV / FINAL_DIV!r})], "
        f"milestones=[{warm}])",
        "# step onecycle sequential",
    ]
    lines += [f"{i} {a:.17g} {b:.17g}" for i, (a, b) in enumerate(zip(one, seq))]
    data = ("\n".join(lines) + "\n").encode()
    path = os.path.join(OUT, "onecycle.txt")
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)
    manifest.append(f"args onecycle.txt sha256 {sha(args.encode())} {args}")
    manifest.append(f"file onecycle.txt sha256 {sha(data)}")


def main():
    os.makedirs(OUT, exist_ok=True)
    conv_fixture()
    bn_fixture()
    net_fixture()
    onecycle_fixture()
    text = ("# SHA-256 of each fixture file, of each input (f32 little-endian bytes) and of each\n"
            "# fixture's generating arguments; written by tests/python/make_torch_f32_fixtures.py,\n"
            "# checked by tests/cnn_torch_f32_oracle.rs.\n" + "\n".join(manifest) + "\n")
    path = os.path.join(OUT, "MANIFEST.txt")
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

"""Cross-checks gradspec's .safetensors files with the official Python `safetensors` library.

Not run by `cargo test` (it needs Python). With `pip install safetensors numpy`:

    # 1. Python writes a state_dict the way torch does; Rust must load it.
    python tests/python/check_safetensors.py write golden/cnn/python_written.safetensors
    cargo test --release --test cnn_safetensors python_written

    # 2. Rust writes a checkpoint; Python must read it as torch's load_state_dict(strict=True)
    #    would accept it: exactly the state_dict keys, torch's shapes and dtypes.
    GRADSPEC_PY_FIXTURE=/tmp/gradspec.safetensors \
        cargo test --release --test cnn_safetensors writes_a_checkpoint_for_python
    python tests/python/check_safetensors.py check /tmp/gradspec.safetensors

If `torch` is importable, `check` also builds the source network and runs
`model.load_state_dict(safetensors.torch.load_file(path))` and an eval forward pass.
"""
import sys

import numpy as np
from safetensors.numpy import load_file, save_file

# The source network's state_dict, in torch's order: (name, shape, dtype).
STATE_DICT = []
for name, cout, cin, k in [("conv1", 16, 1, 3), ("bn1", 16, 0, 0), ("conv2", 32, 16, 3),
                           ("bn2", 32, 0, 0), ("conv3", 8, 32, 1), ("conv4", 16, 8, 3),
                           ("bn4", 16, 0, 0), ("conv5", 32, 16, 3), ("bn5", 32, 0, 0),
                           ("conv6", 16, 32, 1), ("conv7", 32, 16, 3)]:
    if name.startswith("conv"):
        STATE_DICT += [(f"{name}.weight", (cout, cin, k, k), np.float32),
                       (f"{name}.bias", (cout,), np.float32)]
    else:
        STATE_DICT += [(f"{name}.{w}", (cout,), np.float32)
                       for w in ("weight", "bias", "running_mean", "running_var")]
        STATE_DICT += [(f"{name}.num_batches_tracked", (), np.int64)]
STATE_DICT += [("fc1.weight", (10, 32), np.float32), ("fc1.bias", (10,), np.float32)]


def marker(t, flat):
    """The value the Rust test expects at flat index `flat` of tensor number `t`."""
    return np.float32(t * 1000.0 + flat * 0.25)


def write(path):
    tensors = {}
    for t, (name, shape, dtype) in enumerate(STATE_DICT):
        if dtype == np.int64:
            tensors[name] = np.array(200 + t, dtype=np.int64)  # 0-d, as torch saves it
        else:
            n = int(np.prod(shape))
            tensors[name] = (t * 1000.0 + np.arange(n) * 0.25).astype(np.float32).reshape(shape)
    save_file(tensors, path, metadata={"format": "pt"})
    print(f"wrote {path}: {len(tensors)} tensors")


def check(path):
    sd = load_file(path)
    want = {name: (shape, dtype) for name, shape, dtype in STATE_DICT}
    assert set(sd) == set(want), f"keys differ: {set(sd) ^ set(want)}"
    for name, (shape, dtype) in want.items():
        a = sd[name]
        assert a.shape == shape, f"{name}: shape {a.shape}, expected {shape}"
        assert a.dtype == dtype, f"{name}: dtype {a.dtype}, expected {dtype}"
        assert np.all(np.isfinite(a)), name
    assert all(np.all(sd[f"{b}.running_var"] > 0) for b in ("bn1", "bn2", "bn4", "bn5"))
    print(f"{path}: {len(sd)} tensors, keys, shapes and dtypes match the state_dict")
    try:
        import torch  # noqa: F401
    except ImportError:
        print("torch not installed: load_state_dict not exercised")
        return
    import safetensors.torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 16, 3)
            self.bn1 = nn.BatchNorm2d(16)
            self.conv2 = nn.Conv2d(16, 32, 3)
            self.bn2 = nn.BatchNorm2d(32)
            self.conv3 = nn.Conv2d(32, 8, 1)
            self.conv4 = nn.Conv2d(8, 16, 3)
            self.bn4 = nn.BatchNorm2d(16)
            self.conv5 = nn.Conv2d(16, 32, 3)
            self.bn5 = nn.BatchNorm2d(32)
            self.conv6 = nn.Conv2d(32, 16, 1)
            self.conv7 = nn.Conv2d(16, 32, 3)
            self.fc1 = nn.Linear(32, 10)
            self.drop = nn.Dropout(0.05)
            self.pool = nn.MaxPool2d(2, 2)
            self.gap = nn.AvgPool2d(2, 2)

        def forward(self, x):
            x = self.drop(self.bn1(F.relu(self.conv1(x))))
            x = self.drop(self.bn2(F.relu(self.conv2(x))))
            x = self.pool(self.conv3(x))
            x = self.drop(self.bn4(F.relu(self.conv4(x))))
            x = self.drop(self.bn5(F.relu(self.conv5(x))))
            x = self.pool(self.conv6(x))
            x = self.gap(F.relu(self.conv7(x)))
            return F.log_softmax(self.fc1(x.view(-1, 32)), dim=1)

    model = Net()
    model.load_state_dict(safetensors.torch.load_file(path))
    model.eval()
    out = model(torch.zeros(2, 1, 28, 28))
    print(f"torch load_state_dict ok; eval output {tuple(out.shape)}")


if __name__ == "__main__":
    {"write": write, "check": check}[sys.argv[1]](sys.argv[2])

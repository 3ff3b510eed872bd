"""Golden vectors for gradspec's augmentation geometry, computed by Pillow itself.

torchvision applies CenterCrop / Resize / RandomRotation to PIL images by calling exactly
these Pillow methods (torchvision.transforms.functional_pil: crop, resize, rotate), so
Pillow is the reference. Regenerate (Pillow 13.0.0 was used) with:

    python3 -m venv /tmp/pil && /tmp/pil/bin/pip install pillow numpy
    /tmp/pil/bin/python golden/data/make_pil_golden.py

Output `pil_golden.bin.gz`, gzip of a sequence of records, no header:
    input   784 bytes  (28×28 row-major)
    then, for each case of CASES in order, 784 bytes of Pillow's output.
Inputs: the first 8 images of tests/fixtures/mnist/t10k-images-idx3-ubyte.gz, then 4
uniform-noise images from numpy.random.default_rng(2024) (noise exposes any off-by-one in
the pixel mapping that smooth digits would hide).
"""
import gzip
import math
import pathlib

import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[2]
# (crop, angle): crop=True means CenterCrop(22) then Resize((28,28), BILINEAR);
# then rotate(angle, NEAREST, expand=False, center=None, fillcolor=0) unless angle is None.
CASES = [(True, None)] + [
    (False, a)
    for a in [-15.0, -12.345, -7.5, -1e-3, 0.0, 0.5, 3.0, 9.87654321, 14.999, 15.0,
              45.0, 90.0, 180.0, 270.0, -90.5]
] + [(True, 7.0), (True, -11.0)]


def apply(img, crop, angle):
    if crop:
        w, h = img.size
        top = int(round((h - 22) / 2.0))
        left = int(round((w - 22) / 2.0))
        img = img.crop((left, top, left + 22, top + 22))
    img = img.resize((28, 28), Image.BILINEAR)  # identity (a copy) when already 28×28
    if angle is not None:
        img = img.rotate(angle, resample=Image.NEAREST, expand=False, center=None, fillcolor=0)
    return img


def main():
    raw = gzip.open(ROOT / "tests/fixtures/mnist/t10k-images-idx3-ubyte.gz").read()
    digits = [np.frombuffer(raw, np.uint8, 784, 16 + 784 * i).reshape(28, 28) for i in range(8)]
    rng = np.random.default_rng(2024)
    noise = [rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(4)]
    out = bytearray()
    for arr in digits + noise:
        out += arr.tobytes()
        img = Image.fromarray(arr)  # uint8 2-D array → mode "L"
        assert img.mode == "L"
        for crop, angle in CASES:
            out += np.asarray(apply(img, crop, angle), dtype=np.uint8).tobytes()
    path = ROOT / "golden/data/pil_golden.bin.gz"
    path.write_bytes(gzip.compress(bytes(out), compresslevel=9, mtime=0))
    print(f"wrote {path} ({len(out)} raw bytes, {len(CASES)} cases)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reference PIQE values for codec/tests/piqe.rs, from pypiqe (a line-by-line
numpy/OpenCV port of MATLAB's piqe.m).

Dev-time only; nothing in the product or CI runs it. Reproduce:

    python3 -m venv target/piqe-venv
    target/piqe-venv/bin/pip install pypiqe==1.2 pillow
    cargo run --release -p nawqsr-codec --example piqe_inputs -- ../shared target/piqe-inputs
    target/piqe-venv/bin/python tools/piqe_reference.py

It (1) writes the synthetic test images (fixed seed) to
codec/tests/data/piqe/*.png, (2) scores them, the Set5/Set14 HR images of
../shared and the derived images of target/piqe-inputs (LR, bicubic, SR), and
(3) writes codec/tests/data/piqe/reference.json.

Grey conversion: pypiqe calls cv2.cvtColor(BGR2GRAY) (14-bit fixed-point
weights); MATLAB and our Rust code use rgb2gray's exact weights with round
half away from zero. Each image is therefore scored on the MATLAB grey plane
computed here ("piqe"), which isolates the PIQE algorithm, and also through
pypiqe's own colour conversion ("piqe_cv2_gray"), to document what the grey
convention alone changes.
"""
import json
import pathlib

import cv2
import numpy as np
from PIL import Image
from pypiqe import piqe

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "codec/tests/data/piqe"
SHARED = ROOT.parent / "shared"
DERIVED = ROOT / "target/piqe-inputs"
W = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])


def matlab_gray(rgb):
    """rgb2gray on uint8: weighted sum, rounded half away from zero."""
    if rgb.ndim == 2:
        return rgb
    g = rgb[..., :3].astype(np.float64) @ W
    return np.clip(np.floor(g + 0.5), 0, 255).astype(np.uint8)


def synthetic():
    """Small images that exercise every branch: noise, blur, blockiness,
    padding (sizes not multiples of 16), flat areas, colour."""
    rng = np.random.default_rng(20261203)
    h, w = 56, 72
    yy, xx = np.mgrid[0:h, 0:w]
    out = {}
    smooth = 128 + 60 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    out["smooth"] = smooth
    out["noise_s10"] = smooth + rng.normal(0, 10, (h, w))
    out["noise_s40"] = smooth + rng.normal(0, 40, (h, w))
    white = rng.uniform(0, 255, (h, w))
    out["white"] = white
    out["blur"] = cv2.GaussianBlur(white, (9, 9), 2.0)
    # 8x8 blocks of constant value with a little texture: blockiness.
    blocks = np.kron(rng.uniform(30, 220, (h // 8, w // 8)), np.ones((8, 8)))
    out["blocky"] = blocks + rng.normal(0, 2, (h, w))
    checker = ((xx // 4 + yy // 4) % 2) * 200 + 20
    out["checker"] = checker + rng.normal(0, 5, (h, w))
    imgs = {k: np.clip(np.rint(v), 0, 255).astype(np.uint8) for k, v in out.items()}
    # One RGB image (grey conversion path) and one odd size (padding wider
    # than the image's remainder).
    rgb = np.stack(
        [imgs["noise_s10"], imgs["blur"], imgs["checker"]], axis=-1
    )
    imgs["rgb_mix"] = rgb
    imgs["odd_37x23"] = imgs["noise_s40"][:23, :37]
    return imgs


def score(rgb):
    g = matlab_gray(rgb)
    s = float(piqe(g)[0])
    bgr = rgb[..., ::-1].copy() if rgb.ndim == 3 else rgb
    s_cv = float(piqe(bgr)[0])
    return s, s_cv


def main():
    DATA.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, img in synthetic().items():
        p = DATA / f"{name}.png"
        Image.fromarray(img).save(p)
        s, s_cv = score(img)
        entries.append({"image": f"data/piqe/{p.name}", "source": "committed",
                        "piqe": s, "piqe_cv2_gray": s_cv})
    if SHARED.is_dir():
        for setname in ["Set5", "Set14"]:
            for p in sorted((SHARED / "datasets" / setname).glob("*.png")):
                img = np.array(Image.open(p).convert("RGB"))
                s, s_cv = score(img)
                entries.append({"image": f"{setname}/{p.stem}", "source": "shared_hr",
                                "piqe": s, "piqe_cv2_gray": s_cv})
    if DERIVED.is_dir():
        for p in sorted(DERIVED.glob("*.png")):
            img = np.array(Image.open(p).convert("RGB"))
            s, s_cv = score(img)
            entries.append({"image": p.stem, "source": "derived",
                            "piqe": s, "piqe_cv2_gray": s_cv})
    doc = {
        "generator": "tools/piqe_reference.py (pypiqe 1.2, numpy %s, opencv %s)"
        % (np.__version__, cv2.__version__),
        "images": entries,
    }
    (DATA / "reference.json").write_text(json.dumps(doc, indent=1) + "\n")
    d = [abs(e["piqe"] - e["piqe_cv2_gray"]) for e in entries]
    print(f"{len(entries)} images; |matlab gray - cv2 gray| max {max(d):.4f}, mean {np.mean(d):.4f}")


if __name__ == "__main__":
    main()

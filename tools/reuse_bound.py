#!/usr/bin/env python3
"""What exact temporal reuse could save on a clip, for any executor (issue 18).

Decodes CLIP (GStreamer, RGB), and for each frame against the previous one
marks the 16x16 LR patches that are dirty: some pixel within the model's
receptive halo (6 LR pixels for the bundled x2 nets) of the patch changed,
as `runtime::reuse::changed` decides with threshold 0 (exact reuse). The
network must recompute the dirty patches' outputs, and each earlier layer
its output further out by its remaining receptive radius, up to the dirty
patches grown by the halo at the input. So 1 / (dirty share) bounds reuse's
speed-up whatever executes the network (sub-frames or a masked executor),
before the comparison's own cost; the halo-grown share is the input layer's.

    tools/reuse_bound.py CLIP [--halo 6] [--tile 16] [--frames N]
"""
import argparse
import re
import subprocess
import sys

import numpy as np


def frames(clip, limit):
    # The decoded size, from the caps gst-launch prints (-v) for one frame.
    caps = subprocess.run(
        ["gst-launch-1.0", "-v", "filesrc", f"location={clip}", "!", "decodebin", "!",
         "videoconvert", "!", "video/x-raw,format=RGB", "!", "fakesink", "num-buffers=1"],
        capture_output=True, text=True, check=True,
    ).stdout
    m = re.search(r"width=\(int\)(\d+), height=\(int\)(\d+)", caps)
    if not m:
        sys.exit(f"{clip}: no decoded RGB size in gst-launch's caps")
    w, h = int(m.group(1)), int(m.group(2))
    p = subprocess.Popen(
        ["gst-launch-1.0", "-q", "filesrc", f"location={clip}", "!", "decodebin", "!",
         "videoconvert", "!", "video/x-raw,format=RGB", "!", "fdsink", "fd=1"],
        stdout=subprocess.PIPE,
    )
    n, size = 0, w * h * 3
    while limit is None or n < limit:
        buf = p.stdout.read(size)
        if len(buf) < size:
            break
        n += 1
        yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
    p.kill()


def grow(mask, r):
    """Square dilation of a boolean map by r pixels."""
    out = mask.copy()
    for _ in range(r):
        m = out.copy()
        m[1:, :] |= out[:-1, :]
        m[:-1, :] |= out[1:, :]
        m[:, 1:] |= m[:, :-1].copy()
        m[:, :-1] |= m[:, 1:].copy()
        out = m
    return out


def main():
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("clip")
    a.add_argument("--halo", type=int, default=6)
    a.add_argument("--tile", type=int, default=16)
    a.add_argument("--frames", type=int)
    a = a.parse_args()
    prev = None
    dirty_px = grown_px = total = 0.0
    n = 0
    for f in frames(a.clip, a.frames):
        if prev is not None:
            h, w, _ = f.shape
            changed = (f != prev).any(axis=2)
            near = grow(changed, a.halo)
            ty, tx = -(-h // a.tile), -(-w // a.tile)
            pad = np.zeros((ty * a.tile, tx * a.tile), bool)
            pad[:h, :w] = near
            dirty = pad.reshape(ty, a.tile, tx, a.tile).any(axis=(1, 3))
            px = np.kron(dirty, np.ones((a.tile, a.tile), bool))[:h, :w]
            dirty_px += px.sum()
            grown_px += grow(px, a.halo).sum()
            total += h * w
            n += 1
        prev = f
    if not n:
        sys.exit(f"{a.clip}: fewer than two frames decoded")
    d, g = dirty_px / total, grown_px / total
    print(f"{a.clip}: {n} frame pairs; dirty patches cover {100 * d:.1f} % of the LR pixels, "
          f"{100 * g:.1f} % grown by the {a.halo}-pixel halo: reuse's speed-up is at most "
          f"x{1 / max(d, 1e-9):.2f} to x{1 / max(g, 1e-9):.2f}, before the comparison")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes assets/sample_lr.png: the project's own small low-resolution test
picture (160x120): a zone plate, colour bars, diagonal edges and a soft disc.
Standard library only, deterministic."""
import math, struct, zlib, pathlib

W, H = 160, 120

def pixel(x, y):
    # left: colour bars with a luminance ramp
    if x < 40:
        bars = [(235, 235, 16), (16, 235, 235), (16, 235, 16), (235, 16, 235), (235, 16, 16), (16, 16, 235)]
        r, g, b = bars[min(y * 6 // H, 5)]
        k = 0.35 + 0.65 * x / 39
        return int(r * k), int(g * k), int(b * k)
    # middle: zone plate (frequency sweep: SR's hardest case for aliasing)
    if x < 110:
        cx, cy = 75, 60
        d2 = (x - cx) ** 2 + (y - cy) ** 2
        v = 0.5 + 0.5 * math.cos(d2 * math.pi / 240.0)
        g = int(30 + 200 * v)
        return g, g, g
    # right: diagonal stripes over a soft coloured disc
    dx, dy = x - 135, y - 60
    disc = max(0.0, 1.0 - math.hypot(dx, dy) / 28.0)
    stripe = 1.0 if ((x + 2 * y) // 6) % 2 == 0 else 0.55
    return int(40 + 200 * disc * stripe), int(60 + 120 * stripe), int(200 - 150 * disc)

rows = b"".join(b"\x00" + bytes(c for x in range(W) for c in pixel(x, y)) for y in range(H))
def chunk(t, d):
    c = struct.pack(">I", len(d)) + t + d
    return c + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")
out = pathlib.Path(__file__).resolve().parent.parent / "assets" / "sample_lr.png"
out.write_bytes(png)
print(out, len(png), "bytes")

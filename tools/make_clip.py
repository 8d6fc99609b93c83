#!/usr/bin/env python3
"""Writes assets/clips/city_320x180.mp4: the project's own low-resolution,
low-bitrate H.264 test stream (320x180, 30 fps, 5 s, ~250 kbit/s), the input of
the main job (scripts/run.sh).

A camera pans over a procedurally drawn scene (sky, buildings with lit
windows, a sign with lettering, a zone plate, colour bars) while a ball
bounces across it: fine detail, text and edges that low bitrates and bicubic
upscaling blur, and motion, so the encoder works like on a real stream.

`--call` writes assets/clips/call_320x180.mp4 instead: a video call (issue 18's
test clip for temporal reuse). The camera is fixed on part of the same scene
and a person in front of it sways, nods and talks; everything else is static,
as in the calls, screen shares and surveillance streams the product is for.

Standard library only and deterministic; frames are piped as raw RGB into
`gst-launch-1.0 ... x264enc ! mp4mux` (gstreamer1.0-plugins-ugly).
Usage: tools/make_clip.py [--call] [OUT.mp4]"""
import math, pathlib, random, subprocess, sys

W, H, FPS, SECONDS = 320, 180, 30, 5
TW, TH = 960, 360  # the scene the camera pans over
N = FPS * SECONDS

rng = random.Random(20261203)

# 5x7 glyphs for the sign (a few letters are enough to look like text).
GLYPHS = {
    "N": ["10001", "11001", "10101", "10011", "10001", "10001", "10001"],
    "A": ["01110", "10001", "10001", "11111", "10001", "10001", "10001"],
    "W": ["10001", "10001", "10001", "10101", "10101", "11011", "10001"],
    "Q": ["01110", "10001", "10001", "10001", "10101", "10010", "01101"],
    "S": ["01111", "10000", "10000", "01110", "00001", "00001", "11110"],
    "R": ["11110", "10001", "10001", "11110", "10100", "10010", "10001"],
    "-": ["00000", "00000", "00000", "11111", "00000", "00000", "00000"],
    " ": ["00000"] * 7,
}


def scene():
    """The TW x TH scene as a list of rows of (r, g, b)."""
    img = [[(0, 0, 0)] * TW for _ in range(TH)]
    # Sky: a vertical gradient.
    for y in range(TH):
        k = y / TH
        c = (int(90 + 80 * k), int(140 + 70 * k), int(230 - 40 * k))
        img[y] = [c] * TW
    # Buildings with windows.
    x = 0
    while x < TW:
        bw = rng.randint(40, 90)
        top = rng.randint(60, 200)
        base = (rng.randint(60, 140), rng.randint(60, 120), rng.randint(60, 110))
        for y in range(top, TH):
            row = img[y]
            for xx in range(x, min(x + bw, TW)):
                wx, wy = (xx - x) % 10, (y - top) % 12
                window = 2 <= wx <= 6 and 3 <= wy <= 8 and xx - x < bw - 4
                lit = window and ((xx - x) // 10 * 7 + (y - top) // 12 * 3 + x) % 5 != 0
                row[xx] = (250, 230, 150) if lit else ((30, 35, 50) if window else base)
        x += bw + rng.randint(0, 6)
    # A sign with lettering, 3x scaled glyphs.
    text, sx, sy, px = "NAWQ-SR", 380, 40, 3
    for y in range(sy - 6, sy + 7 * px + 6):
        for xx in range(sx - 8, sx + len(text) * 6 * px + 8):
            img[y][xx] = (20, 20, 30)
    for i, ch in enumerate(text):
        for gy, bits in enumerate(GLYPHS[ch]):
            for gx, b in enumerate(bits):
                if b == "1":
                    for dy in range(px):
                        for dx in range(px):
                            img[sy + gy * px + dy][sx + (i * 6 + gx) * px + dx] = (255, 80, 40)
    # Zone plate (a frequency sweep: aliasing is SR's hardest case).
    cx, cy, r = 820, 270, 70
    for y in range(cy - r, cy + r):
        for xx in range(cx - r, cx + r):
            d2 = (xx - cx) ** 2 + (y - cy) ** 2
            if d2 < r * r:
                g = int(30 + 200 * (0.5 + 0.5 * math.cos(d2 * math.pi / 300.0)))
                img[y][xx] = (g, g, g)
    # Colour bars along the bottom left.
    bars = [(235, 235, 16), (16, 235, 235), (16, 235, 16), (235, 16, 235), (235, 16, 16), (16, 16, 235)]
    for y in range(300, 350):
        for xx in range(20, 260):
            img[y][xx] = bars[(xx - 20) // 40]
    return img


def frames(img):
    for t in range(N):
        u = t / (N - 1)
        x0 = int(round(u * (TW - W)))
        y0 = int(round((TH - H) * (0.5 - 0.5 * math.cos(2 * math.pi * u))))
        # A ball bouncing in the frame.
        bx = int(40 + (W - 80) * abs(math.sin(math.pi * u * 1.5)))
        by = int(H - 30 - 100 * abs(math.sin(math.pi * u * 4)))
        out = bytearray()
        for y in range(H):
            row = img[y0 + y][x0 : x0 + W]
            if abs(y - by) < 12:
                row = list(row)
                for x in range(max(0, bx - 12), min(W, bx + 12)):
                    if (x - bx) ** 2 + (y - by) ** 2 < 144:
                        row[x] = (240, 200, 30) if ((x - bx) + (y - by)) % 6 < 3 else (200, 40, 40)
            out += bytes(c for p in row for c in p)
        yield bytes(out)


def call_frames(img):
    """A fixed camera on the scene's sign and buildings, a person talking in
    front: head and shoulders sway a few pixels, the mouth opens and closes."""
    x0, y0 = 300, 120
    skin, shirt, hair = (224, 172, 140), (40, 90, 160), (60, 40, 30)
    for t in range(N):
        u = t / FPS
        cx = W // 2 + int(round(6 * math.sin(2 * math.pi * u / 3.0)))
        cy = 112 + int(round(2 * math.sin(2 * math.pi * u / 1.7)))
        mouth = 2 + int(round(3 * abs(math.sin(2 * math.pi * u * 2.3))))
        out = bytearray()
        for y in range(H):
            row = list(img[y0 + y][x0 : x0 + W])
            for x in range(cx - 70, cx + 71):
                if not 0 <= x < W:
                    continue
                dx, dy = x - cx, y - cy
                if y > cy + 45 and abs(dx) < 70 - max(0, 60 - (y - cy - 45) * 3):
                    row[x] = shirt  # shoulders
                elif (dx / 30) ** 2 + (dy / 40) ** 2 < 1:
                    row[x] = hair if dy < -22 else skin
                    if dy in (-8, -7) and 8 <= abs(dx) <= 14:
                        row[x] = (30, 30, 40)  # eyes
                    if 14 <= dy < 14 + mouth and abs(dx) <= 9:
                        row[x] = (120, 30, 40)  # mouth
                elif y > cy + 30 and abs(dx) < 11:
                    row[x] = skin  # neck
            out += bytes(c for p in row for c in p)
        yield bytes(out)


def main():
    root = pathlib.Path(__file__).resolve().parent.parent
    args = sys.argv[1:]
    call = "--call" in args
    args = [a for a in args if a != "--call"]
    default = "assets/clips/call_320x180.mp4" if call else "assets/clips/city_320x180.mp4"
    out = pathlib.Path(args[0]) if args else root / default
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".partial.mp4")
    # A call: constant quantizer and one key frame, as real-time call encoders
    # run; a static background then stays skip blocks, bit-identical from
    # frame to frame (x264's rate control would keep refining it).
    x264 = (
        ["x264enc", "pass=quant", "quantizer=30", "speed-preset=slow", "key-int-max=300", "threads=1"]
        if call
        else ["x264enc", "bitrate=250", "speed-preset=slow", "key-int-max=60", "threads=1"]
    )
    cmd = [
        "gst-launch-1.0", "-q", "fdsrc", "fd=0", "!",
        "rawvideoparse", "format=rgb", f"width={W}", f"height={H}", f"framerate={FPS}/1", "!",
        "videoconvert", "!", "video/x-raw,format=I420", "!",
        *x264, "!",
        "video/x-h264,profile=high", "!", "h264parse", "!", "mp4mux", "!",
        "filesink", f"location={tmp}",
    ]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    for f in (call_frames if call else frames)(scene()):
        p.stdin.write(f)
    p.stdin.close()
    if p.wait() != 0:
        sys.exit(f"make_clip: gst-launch-1.0 failed (exit {p.returncode}); is gstreamer1.0-plugins-ugly installed?")
    tmp.replace(out)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB, {N} frames {W}x{H} @ {FPS} fps)", file=sys.stderr)


if __name__ == "__main__":
    main()

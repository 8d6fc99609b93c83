#!/usr/bin/env python3
"""Plot a quality/latency front from `nawqsr calibrate --pareto --json` as SVG.

Two panels, PSNR and PIQE against predicted ms: the front's points (LRA-greedy,
non-dominated), every LRA-greedy candidate, and the cost-greedy baseline.
Standard library only.

    nawqsr calibrate ... --pareto --json > front.json
    python3 tools/plot_front.py front.json docs/front.svg
"""
import json
import sys

W, H, PAD = 420, 300, 48


def scale(vals, lo_px, hi_px):
    lo, hi = min(vals), max(vals)
    if hi == lo:
        hi = lo + 1.0
    span = hi - lo
    lo, hi = lo - 0.05 * span, hi + 0.05 * span
    return lambda v: lo_px + (v - lo) / (hi - lo) * (hi_px - lo_px), lo, hi


def panel(x0, title, series, ylabel):
    xs = [p[0] for _, pts, _, _ in series for p in pts]
    ys = [p[1] for _, pts, _, _ in series for p in pts]
    fx, xlo, xhi = scale(xs, x0 + PAD, x0 + W - 12)
    fy, ylo, yhi = scale(ys, H - PAD, 24)
    out = [
        f'<rect x="{x0 + PAD}" y="24" width="{W - PAD - 12}" height="{H - PAD - 24}" fill="none" stroke="#888"/>',
        f'<text x="{x0 + W / 2}" y="16" text-anchor="middle" font-size="13">{title}</text>',
        f'<text x="{x0 + W / 2}" y="{H - 8}" text-anchor="middle" font-size="11">predicted ms per frame</text>',
        f'<text x="{x0 + 12}" y="{H / 2}" font-size="11" transform="rotate(-90 {x0 + 12} {H / 2})" text-anchor="middle">{ylabel}</text>',
    ]
    for v in (xlo, (xlo + xhi) / 2, xhi):
        out.append(f'<text x="{fx(v):.1f}" y="{H - PAD + 14}" font-size="10" text-anchor="middle">{v:.1f}</text>')
    for v in (ylo, (ylo + yhi) / 2, yhi):
        out.append(f'<text x="{x0 + PAD - 4}" y="{fy(v) + 3:.1f}" font-size="10" text-anchor="end">{v:.3f}</text>')
    for name, pts, colour, line in series:
        pts = sorted(pts)
        if line and len(pts) > 1:
            d = " ".join(f"{fx(x):.1f},{fy(y):.1f}" for x, y in pts)
            out.append(f'<polyline points="{d}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        for x, y in pts:
            out.append(f'<circle cx="{fx(x):.1f}" cy="{fy(y):.1f}" r="{3.5 if line else 2.5}" fill="{colour}"/>')
    return out


def main():
    src, dst = sys.argv[1], sys.argv[2]
    rep = json.load(open(src))
    f = rep["front"]
    pts = f["points"]
    psnr = [
        ("front (LRA-greedy)", [(p["predicted_ms"], p["psnr"]) for p in pts], "#c0392b", True),
        ("LRA-greedy candidates", [(c["predicted_ms"], c["psnr"]) for c in f["lra_greedy"]], "#e8a09a", False),
        ("cost-greedy baseline", [(c["predicted_ms"], c["psnr"]) for c in f["cost_greedy"]], "#2e86c1", False),
    ]
    piqe = [("front PIQE", [(p["predicted_ms"], p["piqe"]) for p in pts if p.get("piqe") is not None], "#27ae60", True)]
    body = panel(0, "Y-PSNR (calibration set)", psnr, "dB") + panel(W, "PIQE of the outputs (lower is better)", piqe, "PIQE")
    legend = []
    for i, (name, _, colour, _) in enumerate(psnr + piqe):
        legend.append(f'<circle cx="{PAD + 10 + 200 * i}" cy="{H + 12}" r="4" fill="{colour}"/>')
        legend.append(f'<text x="{PAD + 18 + 200 * i}" y="{H + 16}" font-size="11">{name}</text>')
    prof = f["profile"]
    note = f'{prof["host"]} ({prof["level"]}), {prof["threads"]} threads, {prof["input"][0]}x{prof["input"][1]}'
    legend.append(f'<text x="{PAD}" y="{H + 36}" font-size="10" fill="#555">{note}</text>')
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H + 44}" font-family="sans-serif">',
           '<rect width="100%" height="100%" fill="white"/>'] + body + legend + ["</svg>"]
    open(dst, "w").write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()

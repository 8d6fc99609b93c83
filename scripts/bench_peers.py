#!/usr/bin/env python3
"""Helper of scripts/bench-peers.sh: the peer engines (ONNX Runtime, OpenVINO)
next to nawqsr, on the same models, frame sizes and thread count.

Subcommands (bench-peers.sh calls them in this order):
  quantize  make the ORT static-INT8 model (QOperator, per-channel weights) and
            the QDQ model OpenVINO reads for its INT8, from ~10 LR crops of
            ../shared/datasets/train (fixed seed), into a temp dir
  run       one engine/precision on one model: latency (median of N timed
            runs after warm-up, on a random frame) and Set5 PSNR, as JSON
  report    gather every JSON of a results dir into a Markdown table
            (and optionally one JSON file)

Set5 PSNR follows `nawqsr eval`: HR modcropped, LR = MATLAB bicubic (the stored
Set5_matlab_lr/x{s}/*_LR.png, identical to ours), output clipped to [0,1],
x255, rounded to u8; PSNR on float BT.601 Y with `scale` pixels shaved, mean
over the 5 images.
"""
import argparse
import glob
import json
import os
import random
import statistics
import sys
import time

import numpy as np
from PIL import Image


# ---------------------------------------------------------------- quality

def y_channel(rgb_u8):
    x = rgb_u8.astype(np.float64)
    return 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0


def psnr_y(sr_u8, hr_u8, shave):
    a = y_channel(sr_u8)[shave:-shave, shave:-shave]
    b = y_channel(hr_u8)[shave:-shave, shave:-shave]
    mse = np.mean((a - b) ** 2)
    return 10.0 * np.log10(255.0 * 255.0 / mse)


def set5_pairs(lr_dir):
    lrs = sorted(glob.glob(os.path.join(lr_dir, "*_LR.png")))
    if not lrs:
        raise SystemExit(f"no *_LR.png in {lr_dir}")
    out = []
    for lr in lrs:
        hr = lr[: -len("_LR.png")] + "_HR.png"
        out.append((np.asarray(Image.open(lr).convert("RGB")), np.asarray(Image.open(hr).convert("RGB")), os.path.basename(lr)))
    return out


def to_nchw(rgb_u8):
    return (rgb_u8.astype(np.float32) / 255.0).transpose(2, 0, 1)[None].copy()


def to_u8(sr_nchw):
    x = np.clip(sr_nchw[0].transpose(1, 2, 0), 0.0, 1.0) * 255.0
    return np.round(x).astype(np.uint8)


def set5_psnr(infer, lr_dir, scale):
    vals = []
    for lr, hr, _name in set5_pairs(lr_dir):
        h, w = lr.shape[0] * scale, lr.shape[1] * scale
        hr = hr[:h, :w]  # modcrop (already a multiple of the scale here)
        sr = to_u8(infer(to_nchw(lr)))
        if sr.shape != hr.shape:
            raise SystemExit(f"output {sr.shape} != HR {hr.shape}")
        vals.append(psnr_y(sr, hr, scale))
    return float(np.mean(vals))


# ----------------------------------------------------------- calibration

def calib_crops(train_dir, scale, n, lr_size, seed):
    files = sorted(glob.glob(os.path.join(train_dir, "**", "*.*"), recursive=True))
    files = [f for f in files if f.lower().endswith((".png", ".bmp", ".jpg", ".jpeg"))]
    if not files:
        raise SystemExit(f"no training images under {train_dir}")
    rng = random.Random(seed)
    crops = []
    hr_size = lr_size * scale
    for f in rng.sample(files, len(files)):
        im = Image.open(f).convert("RGB")
        if im.width < hr_size or im.height < hr_size:
            continue
        x = rng.randrange(im.width - hr_size + 1)
        y = rng.randrange(im.height - hr_size + 1)
        hr = im.crop((x, y, x + hr_size, y + hr_size))
        lr = hr.resize((lr_size, lr_size), Image.BICUBIC)  # antialiased, like MATLAB imresize
        crops.append(to_nchw(np.asarray(lr)))
        if len(crops) == n:
            break
    return crops


def cmd_quantize(a):
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_static)

    crops = calib_crops(a.train, a.scale, a.n_calib, a.calib_size, a.seed)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"lr": c} for c in crops])

        def get_next(self):
            return next(self.it, None)

    os.makedirs(a.out_dir, exist_ok=True)
    for fmt, tag in ((QuantFormat.QOperator, "qop"), (QuantFormat.QDQ, "qdq")):
        out = os.path.join(a.out_dir, f"{a.name}_int8_{tag}.onnx")
        t = time.time()
        quantize_static(a.model, out, Reader(), quant_format=fmt, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        print(f"bench_peers: {out} ({len(crops)} calibration crops of {a.calib_size}x{a.calib_size} LR, {time.time() - t:.1f} s)", file=sys.stderr)


# --------------------------------------------------------------- engines

def make_ort(model_file, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model_file, so, providers=["CPUExecutionProvider"])

    def infer(x):
        return sess.run(None, {"lr": x})[0]
    return infer, ort.__version__


def make_ov(model_file, precision, threads, shape=None):
    import openvino as ov
    core = ov.Core()
    model = core.read_model(model_file)
    if shape is not None:
        model.reshape({"lr": ov.PartialShape(list(shape))})
    cfg = {
        "INFERENCE_NUM_THREADS": threads,
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
        # int8 comes from the QDQ graph (FakeQuantize); the rest runs in f32.
        # Say f32 explicitly: on a CPU with AVX512-BF16 the default may be bf16.
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
    }
    compiled = core.compile_model(model, "CPU", cfg)
    req = compiled.create_infer_request()

    def infer(x):
        req.infer({0: x})
        return req.get_output_tensor(0).data.copy()
    return infer, ov.__version__.split("-")[0]


def cmd_run(a):
    w, h = (int(v) for v in a.input_size.lower().split("x"))
    if a.engine == "ort":
        infer, ver = make_ort(a.model_file, a.threads)
        q_infer = infer
    else:
        infer, ver = make_ov(a.model_file, a.precision, a.threads, shape=(1, 3, h, w))
        q_infer = None  # dynamic-shape model for Set5, compiled after the timing
    x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
    load0 = loadavg()
    for _ in range(a.warmup):
        out = infer(x)
    assert out.shape == (1, 3, h * a.scale, w * a.scale), out.shape
    times = []
    for _ in range(a.runs):
        t = time.perf_counter()
        infer(x)
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    psnr = None
    if a.set5_lr:
        if q_infer is None:
            del infer
            q_infer, _ = make_ov(a.model_file, a.precision, a.threads)
        psnr = set5_psnr(q_infer, a.set5_lr, a.scale)
    res = {
        "engine": a.engine_label, "version": ver, "precision": a.precision, "model": a.model_name,
        "input_size": a.input_size, "output_size": f"{w * a.scale}x{h * a.scale}", "threads": a.threads,
        "median_ms": statistics.median(times), "p90_ms": times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))],
        "runs": a.runs, "warmup": a.warmup, "set5_psnr": psnr, "set5_scale": a.scale, "loadavg": load0,
        "model_file": os.path.basename(a.model_file),
    }
    with open(a.out, "w") as f:
        json.dump(res, f)
    print(f"bench_peers: {res['engine']} {res['precision']} {res['model']}: {res['median_ms']:.1f} ms, Set5 {psnr if psnr is None else round(psnr, 4)} dB", file=sys.stderr)


# ---------------------------------------------------------------- report

def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except OSError:
        return None


def max_rss_mb(time_file):
    """Max RSS from `/usr/bin/time -v -o FILE` (kbytes), in MB (10^6 bytes)."""
    with open(time_file) as f:
        for line in f:
            if "Maximum resident set size" in line:
                return int(line.rsplit(":", 1)[1]) * 1024 / 1e6
    return None


def cmd_nawqsr_row(a):
    with open(a.bench) as f:
        b = json.load(f)
    w, h = (int(v) for v in a.input_size.lower().split("x"))
    row = {
        "engine": "nawqsr", "version": a.version, "precision": b["mode"], "model": a.model_name,
        "input_size": a.input_size, "output_size": f"{w * a.scale}x{h * a.scale}", "threads": b["threads"],
        "median_ms": b["median_ms"], "p90_ms": b["p90_ms"], "runs": b["runs"], "warmup": 2,
        "level": b.get("level"), "set5_psnr": None, "set5_scale": a.scale, "loadavg": a.loadavg,
    }
    if a.eval and os.path.exists(a.eval):
        with open(a.eval) as f:
            row["set5_psnr"] = json.load(f)["mean_psnr"]
    if a.time_file:
        row["max_rss_mb"] = max_rss_mb(a.time_file)
    with open(a.out, "w") as f:
        json.dump(row, f)


def cmd_add_rss(a):
    with open(a.row) as f:
        row = json.load(f)
    row["max_rss_mb"] = max_rss_mb(a.time_file)
    with open(a.row, "w") as f:
        json.dump(row, f)


def cmd_report(a):
    groups = {}
    for f in sorted(glob.glob(os.path.join(a.results, "*.row.json"))):
        with open(f) as fh:
            r = json.load(fh)
        groups.setdefault((r["model"], r["engine"], r["precision"]), []).append(r)
    # One row per (model, engine, precision). With several rounds, ms/frame is the
    # median of the least-disturbed round (the lowest round median: on a machine
    # shared with other jobs, load only ever adds time), p90 is that round's,
    # RSS the worst round's, PSNR from the round that measured it (deterministic).
    rows = []
    for rs in groups.values():
        r = dict(rs[0])
        r["round_medians_ms"] = [x["median_ms"] for x in rs]
        best = min(rs, key=lambda x: x["median_ms"])
        r["median_ms"] = best["median_ms"]
        r["p90_ms"] = best["p90_ms"]
        r["runs"] = sum(x["runs"] for x in rs)
        r["rounds"] = len(rs)
        r["loadavg"] = [x.get("loadavg") for x in rs]
        r["set5_psnr"] = next((x["set5_psnr"] for x in rs if x.get("set5_psnr") is not None), None)
        rss = [x["max_rss_mb"] for x in rs if x.get("max_rss_mb") is not None]
        r["max_rss_mb"] = max(rss) if rss else None
        rows.append(r)
    order_m = {m: i for i, m in enumerate(a.model_order.split(","))} if a.model_order else {}
    order_e = {"nawqsr": 0, "ONNX Runtime": 1, "OpenVINO": 2}
    order_p = {"int8": 0, "a16w8": 1} | {"fp32": 2, "bf16": 3}
    order_p_peer = {"fp32": 0, "bf16": 1, "int8": 2}
    rows.sort(key=lambda r: (order_m.get(r["model"], 99), r["model"], order_e.get(r["engine"], 9),
                             (order_p if r["engine"] == "nawqsr" else order_p_peer).get(r["precision"], 9)))
    ref = {(r["model"], r["precision"]): r["median_ms"] for r in rows if r["engine"] == "nawqsr"}
    for r in rows:
        r["fps"] = 1000.0 / r["median_ms"]
        for p in ("int8", "a16w8"):
            b = ref.get((r["model"], p))
            r[f"ratio_vs_nawqsr_{p}"] = r["median_ms"] / b if b else None

    def f(v, fmt):
        return "—" if v is None else format(v, fmt)

    print("| engine | precision | model: LR → SR | ms/frame (median) | p90 ms | fps | × vs nawqsr INT8 | × vs nawqsr A16W8 | Set5 PSNR dB (×scale) | max RSS MB | every round's median ms |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        lab = r["engine"] + (f" {r['version']}" if r.get("version") else "")
        prec = r["precision"].upper() + (f" ({r['level']})" if r.get("level") else "")
        print(f"| {lab} | {prec} | {r['model']}: {r['input_size']} → {r['output_size']} | "
              f"{r['median_ms']:.1f} | {f(r.get('p90_ms'), '.1f')} | {r['fps']:.2f} | {f(r['ratio_vs_nawqsr_int8'], '.2f')} | "
              f"{f(r['ratio_vs_nawqsr_a16w8'], '.2f')} | {f(r.get('set5_psnr'), '.4f')} (×{r.get('set5_scale', '?')}) | {f(r.get('max_rss_mb'), '.0f')} | {' / '.join(f'{v:.0f}' for v in r['round_medians_ms'])} |")
    loads = [v for r in rows for v in r["loadavg"] if v is not None]
    nr = rows[0]["rounds"] if rows else 0
    per = rows[0]["runs"] // nr if rows else 0
    print()
    if not rows:
        return
    note = f"× = engine ms / nawqsr ms (above 1: nawqsr is faster). {rows[0]['threads']} threads each; "
    if nr == 1:
        note += f"median of {per} timed runs after warm-up, on a random frame. "
    else:
        note += (f"{nr} rounds (engine order reversed every other round) of {per} timed runs after warm-up, "
                 f"on a random frame; ms/frame and p90 are those of each engine's least-disturbed round "
                 f"(lowest median; every round's median is in the last column), RSS the worst round's. ")
    if loads:
        note += f"1-min load average before each measurement: {min(loads):.1f}–{max(loads):.1f} on {os.cpu_count()} CPUs"
        note += (" (machine shared with other jobs: absolute times are pessimistic, ratios come from the same run)."
                 if max(loads) > 1.5 else ".")
    print(note)
    for r in rows:
        if r["engine"] == "nawqsr" and r["model"] == "IMDN_x4" and r.get("max_rss_mb") is not None:
            verdict = "within" if r["max_rss_mb"] < 300 else "OVER"
            print(f"Peak memory of `nawqsr bench-model` {r['precision'].upper()}, IMDN_x4 {r['input_size']} → {r['output_size']}: "
                  f"{r['max_rss_mb']:.0f} MB max RSS ({verdict} the 300 MB target).")
    print("max RSS: whole process (`/usr/bin/time -v`); for ORT/OpenVINO that includes the Python interpreter, NumPy and the runtime's libraries.")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"rows": rows}, fh, indent=1)
        print(f"bench_peers: wrote {a.json}", file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    q = sub.add_parser("quantize")
    q.add_argument("--model", required=True)
    q.add_argument("--name", required=True)
    q.add_argument("--scale", type=int, required=True)
    q.add_argument("--train", required=True)
    q.add_argument("--out-dir", required=True)
    q.add_argument("--n-calib", type=int, default=10)
    q.add_argument("--calib-size", type=int, default=64, help="LR crop side")
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(fn=cmd_quantize)

    r = sub.add_parser("run")
    r.add_argument("--engine", choices=["ort", "ov"], required=True)
    r.add_argument("--precision", choices=["fp32", "int8", "bf16"], required=True)
    r.add_argument("--model-file", required=True)
    r.add_argument("--model-name", required=True)
    r.add_argument("--scale", type=int, required=True)
    r.add_argument("--input-size", required=True)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--runs", type=int, default=9)
    r.add_argument("--warmup", type=int, default=2)
    r.add_argument("--set5-lr", help="Set5_matlab_lr/x{scale} dir (no PSNR if absent)")
    r.add_argument("--out", required=True)
    r.set_defaults(fn=cmd_run)

    n = sub.add_parser("nawqsr-row")
    n.add_argument("--bench", required=True, help="bench-model --json output")
    n.add_argument("--eval", help="eval --json output")
    n.add_argument("--time-file")
    n.add_argument("--model-name", required=True)
    n.add_argument("--scale", type=int, required=True)
    n.add_argument("--input-size", required=True)
    n.add_argument("--version")
    n.add_argument("--loadavg", type=float)
    n.add_argument("--out", required=True)
    n.set_defaults(fn=cmd_nawqsr_row)

    t = sub.add_parser("add-rss")
    t.add_argument("--row", required=True)
    t.add_argument("--time-file", required=True)
    t.set_defaults(fn=cmd_add_rss)

    s = sub.add_parser("report")
    s.add_argument("--results", required=True)
    s.add_argument("--model-order")
    s.add_argument("--json")
    s.set_defaults(fn=cmd_report)

    a = p.parse_args()
    if a.cmd == "run":
        a.engine_label = {"ort": "ONNX Runtime", "ov": "OpenVINO"}[a.engine]
    a.fn(a)


if __name__ == "__main__":
    main()

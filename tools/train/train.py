"""Trains one PlainSR model (see model.py) on T91 + BSD200 and exports it to
ONNX with export.py. CPU only; a wall-clock budget instead of an epoch count,
with a cosine learning-rate decay over that budget, so a run's length is known
in advance on a shared machine.

    python3 tools/train/train.py --scale 4 --channels 32 --body 3 --minutes 60 \
        --out assets/models/nawq_x4.onnx --log tools/train/logs/nawq_x4.log

The log gets one line per report: elapsed minutes, iterations, mean L1 loss,
learning rate, and Set5 Y-PSNR (shave = scale) of the current weights on the
MATLAB-made LR images (for watching progress; the final numbers come from
`nawqsr eval`, not from here).
"""
import argparse
import math
import pathlib
import random
import time

import numpy as np
import torch
from PIL import Image

from export import export
from model import PlainSR

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "datasets"


def load_rgb(p):
    return np.asarray(Image.open(p).convert("RGB"))


def make_pairs(scale, aug_scales, luma=False):
    """(LR u8, HR u8) pairs: every training image at several downscales (the
    usual SR data augmentation), HR modcropped, LR by bicubic resize rounded to
    u8 as in the test protocol. With `luma`, (LR Y u8, HR Y float32) of MATLAB
    rgb2ycbcr: the LR Y rounded as a decoder's Y plane is, the target exact."""
    files = sorted((SHARED / "train" / "T91").glob("*")) + sorted((SHARED / "train" / "BSD200").glob("*"))
    if not files:
        raise SystemExit(f"no training images under {SHARED / 'train'}: expected T91/ and BSD200/")
    pairs = []
    for f in files:
        img = Image.open(f).convert("RGB")
        for a in aug_scales:
            w, h = int(img.width * a), int(img.height * a)
            hr = img if a == 1.0 else img.resize((w, h), Image.BICUBIC)
            w, h = hr.width - hr.width % scale, hr.height - hr.height % scale
            hr = hr.crop((0, 0, w, h))
            lr = hr.resize((w // scale, h // scale), Image.BICUBIC)
            lr, hr = np.asarray(lr), np.asarray(hr)
            if luma:
                lr = np.round(y_channel(lr.astype(np.float32))).astype(np.uint8)
                hr = y_channel(hr.astype(np.float32)).astype(np.float32)
            pairs.append((lr, hr))
    return pairs


def batch(pairs, weights, scale, n, patch, rng):
    lrs, hrs = [], []
    for _ in range(n):
        lr, hr = pairs[rng.choices(range(len(pairs)), weights)[0]]
        h, w = lr.shape[:2]
        y, x = rng.randrange(h - patch + 1), rng.randrange(w - patch + 1)
        l = lr[y:y + patch, x:x + patch]
        r = hr[y * scale:(y + patch) * scale, x * scale:(x + patch) * scale]
        k = rng.randrange(8)  # the 8 flips/rotations of the square
        if k & 1:
            l, r = l[:, ::-1], r[:, ::-1]
        if k & 2:
            l, r = l[::-1], r[::-1]
        if k & 4:
            l, r = l.swapaxes(0, 1), r.swapaxes(0, 1)
        lrs.append(np.ascontiguousarray(l))
        hrs.append(np.ascontiguousarray(r))
    def t(a):
        a = torch.from_numpy(np.stack(a)).float().div_(255.0)
        return a[:, None] if a.dim() == 3 else a.permute(0, 3, 1, 2)
    return t(lrs), t(hrs)


def y_channel(rgb):
    """MATLAB rgb2ycbcr Y of an RGB u8-valued float array, HxWx3."""
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def set5_psnr(model, scale):
    d = SHARED / "Set5_matlab_lr" / f"x{scale}"
    lrs = sorted(d.glob("*_LR.png"))
    if not lrs:
        return float("nan")
    ps = []
    with torch.no_grad():
        for p in lrs:
            lr = load_rgb(p).copy()
            hr = load_rgb(str(p).replace("_LR", "_HR")).astype(np.float64)
            if model.colors == 1:
                # The codec feeds a luma model rgb2ycbcr Y of an RGB image, unrounded.
                x = torch.from_numpy(y_channel(lr.astype(np.float64)) / 255.0)[None, None].float()
                y = model(x)[0, 0].clamp(0, 1).mul(255).round().numpy().astype(np.float64)
            else:
                x = torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255.0
                sr = model(x)[0].clamp(0, 1).mul(255).round().permute(1, 2, 0).numpy().astype(np.float64)
                y = y_channel(sr)
            hr = hr[: y.shape[0], : y.shape[1]]
            a, b = y[scale:-scale, scale:-scale], y_channel(hr)[scale:-scale, scale:-scale]
            mse = np.mean((a - b) ** 2)
            ps.append(10 * math.log10(255.0 ** 2 / mse))
    return float(np.mean(ps))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, required=True)
    ap.add_argument("--channels", type=int, required=True)
    ap.add_argument("--body", type=int, required=True, help="hidden 3x3 convs between the first and the last")
    ap.add_argument("--minutes", type=float, required=True, help="wall-clock training budget")
    ap.add_argument("--patch", type=int, default=0, help="LR patch side (default 96/scale)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rep", action="store_true", help="train 3x3 + 1x1 + identity branches, merged at export (RepConv)")
    ap.add_argument("--init", help="start from this checkpoint (.pt); the body is reused, the last conv when shapes match")
    ap.add_argument("--qat", action="store_true", help="quantization-aware: 8-bit per-channel weights and u8 activations as the engine's INT8 unit (use with --init-onnx)")
    ap.add_argument("--act-ranges", help="with --qat: fix the u8 ranges to a schedule's (nawqsr calibrate of the init model), the grid the engine will use, instead of following batch maxima")
    ap.add_argument("--init-onnx", help="start from an exported model's deployed weights (e.g. a bundled one)")
    ap.add_argument("--luma", action="store_true", help="a luma model (issue 17): Y in, Y out; trained on MATLAB rgb2ycbcr Y")
    ap.add_argument("--init-rgb-onnx", help="with --luma: start from an RGB model of the same shape, its first conv summed over colours and its last conv's outputs mixed into Y")
    ap.add_argument("--ema", type=float, default=0.0, help="keep an exponential moving average of the weights with this decay (e.g. 0.999); reports and the export use it")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="ONNX file to write")
    ap.add_argument("--log", required=True)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    patch = a.patch or 96 // a.scale
    log = open(a.log, "a")

    def say(msg):
        print(msg, flush=True)
        log.write(msg + "\n")
        log.flush()

    say(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {vars(a)} torch {torch.__version__}")
    pairs = make_pairs(a.scale, [1.0, 0.9, 0.8, 0.7, 0.6], luma=a.luma)
    pairs = [p for p in pairs if min(p[0].shape[:2]) >= patch]
    weights = [p[0].shape[0] * p[0].shape[1] for p in pairs]
    say(f"# {len(pairs)} LR/HR pairs, patch {patch} LR px, batch {a.batch}")

    model = PlainSR(a.scale, a.channels, a.body, rep=a.rep, qat=a.qat, colors=1 if a.luma else 3)
    if a.init:
        state = torch.load(a.init)
        own = model.state_dict()
        kept = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(kept, strict=False)
        say(f"# init from {a.init}: {len(kept)}/{len(own)} tensors")
    if a.init_onnx:
        load_deployed(model, a.init_onnx)
    if a.init_rgb_onnx:
        load_deployed(model, a.init_rgb_onnx, rgb_to_luma=True)
        a.init_onnx = a.init_rgb_onnx
    if a.qat and a.act_ranges:
        import json
        layers = json.load(open(a.act_ranges))["layers"]
        for i, aq in enumerate(model.act_q):
            # ActQuant i quantizes the input of conv i+1 (the schedule's range of that layer).
            aq.max.fill_(layers[f"conv{i + 1}"]["range"][1])
            aq.frozen = True
        say(f"# activation ranges from {a.act_ranges}: {[round(float(q.max), 4) for q in model.act_q]}")
    elif a.qat:
        # Seed the activation ranges (ActQuant.max) before any report.
        with torch.no_grad():
            for _ in range(50):
                model(batch(pairs, weights, a.scale, a.batch, patch, rng)[0])
    if a.init_onnx:
        model.eval()
        say(f"# init from {a.init_onnx}: set5 {set5_psnr(model, a.scale):.3f}")
        model.train()
    say(f"# params {sum(c.weight.numel() + c.bias.numel() for c in model.convs)} deployed, MAC/LR px {model.macs_per_pixel()}")
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    # Weight EMA: the average of the last ~1/(1 - decay) steps, smoother than the last step's
    # weights when the Set5 curve wobbles by a few hundredths of a dB between reports.
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()} if a.ema else None

    def averaged():
        """Context: the model holds the EMA weights (if any) inside, its own weights after."""
        import contextlib

        @contextlib.contextmanager
        def swap():
            if ema is None:
                yield
                return
            live = {k: v.detach().clone() for k, v in model.state_dict().items()}
            model.load_state_dict(ema)
            try:
                yield
            finally:
                model.load_state_dict(live)
        return swap()
    budget = a.minutes * 60.0
    t0 = time.time()
    it, loss_sum, loss_n, next_report = 0, 0.0, 0, 0.0
    ckpt = pathlib.Path(a.log).with_suffix(".pt")  # beside the log, git-ignored
    while True:
        el = time.time() - t0
        if el >= budget:
            break
        lr = 1e-6 + (a.lr - 1e-6) * 0.5 * (1 + math.cos(math.pi * el / budget))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = batch(pairs, weights, a.scale, a.batch, patch, rng)
        loss = (model(x) - y).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ema is not None:
            with torch.no_grad():
                for k, v in model.state_dict().items():
                    if v.dtype.is_floating_point:
                        ema[k].mul_(a.ema).add_(v, alpha=1 - a.ema)
                    else:
                        ema[k].copy_(v)
        it += 1
        loss_sum += loss.item()
        loss_n += 1
        if el >= next_report:
            model.eval()
            with averaged():
                say(f"{el / 60:7.2f} min  it {it:6d}  l1 {loss_sum / loss_n:.5f}  lr {lr:.2e}  set5 {set5_psnr(model, a.scale):.3f}")
                torch.save(model.state_dict(), ckpt)
            model.train()
            loss_sum, loss_n = 0.0, 0
            next_report = el + max(60.0, budget / 30)
    model.eval()
    if ema is not None:
        model.load_state_dict(ema)  # what is reported and exported from here on
    torch.save(model.state_dict(), ckpt)
    say(f"{(time.time() - t0) / 60:7.2f} min  it {it:6d}  final  set5 {set5_psnr(model, a.scale):.3f}")
    if a.qat:
        model.qat = False  # what is exported: float weights, quantized by the engine
        say(f"# float set5 {set5_psnr(model, a.scale):.3f}")
    layers = model.layers_numpy()
    export(layers, a.scale, a.out,
           doc=f"PlainSR x{a.scale}, {a.channels} channels, {a.body} body convs; trained by tools/train/train.py on T91+BSD200")
    check_onnx(model, a.out, a.scale)
    say(f"# wrote {a.out}")


def load_deployed(model, path, rgb_to_luma=False):
    """Sets every conv from an exported ONNX file's `conv{i}.weight/bias` so the
    module computes what the file computes. A RepConv takes the merged weight in
    its 3x3 branch, minus the identity it adds, and a zero 1x1 branch.

    `rgb_to_luma` starts a luma model from an RGB one: on a grey input
    (r = g = b = v, Y = (16 + 219 v) / 255) the first conv sees v = (255 Y − 16) / 219,
    so it takes the colours' summed weights × 255/219 and a bias less their
    16/219 share; the last conv's Y residual is rgb2ycbcr's mix of the RGB
    residuals (DCR: sub-pixel k of colour c is channel 3k + c)."""
    import onnx
    from onnx import numpy_helper
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}
    n_file = sum(1 for k in inits if k.endswith(".weight"))
    if rgb_to_luma:
        last = n_file - 1
        w0 = inits["conv0.weight"].sum(axis=1, keepdims=True)
        inits["conv0.bias"] = inits["conv0.bias"] - w0.sum(axis=(1, 2, 3)) * 16.0 / 219.0
        inits["conv0.weight"] = w0 * 255.0 / 219.0
        k = np.array([65.481, 128.553, 24.966], np.float32) / 255.0
        wl, bl = inits[f"conv{last}.weight"], inits[f"conv{last}.bias"]
        inits[f"conv{last}.weight"] = np.einsum("kcihw,c->kihw", wl.reshape(-1, 3, *wl.shape[1:]), k).astype(np.float32)
        inits[f"conv{last}.bias"] = (bl.reshape(-1, 3) @ k).astype(np.float32)
    # A deeper model than the file: identity convs go in before the last
    # (Net2DeeperNet): on ReLU outputs, ReLU(identity(x)) = x, so the deeper
    # net starts out computing exactly what the file does.
    extra = len(model.convs) - n_file
    if extra < 0:
        raise SystemExit(f"{path}: {n_file} convs, the model has only {len(model.convs)}")
    if extra:
        last = inits.pop(f"conv{n_file - 1}.weight"), inits.pop(f"conv{n_file - 1}.bias")
        c = last[0].shape[1]
        eye = np.zeros((c, c, 3, 3), np.float32)
        eye[np.arange(c), np.arange(c), 1, 1] = 1.0
        for i in range(n_file - 1, n_file - 1 + extra):
            inits[f"conv{i}.weight"], inits[f"conv{i}.bias"] = eye, np.zeros(c, np.float32)
        inits[f"conv{n_file - 1 + extra}.weight"], inits[f"conv{n_file - 1 + extra}.bias"] = last
    with torch.no_grad():
        for i, conv in enumerate(model.convs):
            w = torch.from_numpy(inits[f"conv{i}.weight"].copy())
            b = torch.from_numpy(inits[f"conv{i}.bias"].copy())
            if w.shape != conv.weight.shape:
                raise SystemExit(f"{path}: conv{i}.weight is {tuple(w.shape)}, the model wants {tuple(conv.weight.shape)}")
            if hasattr(conv, "k3"):
                if conv.identity:
                    for c in range(w.shape[0]):
                        w[c, c, 1, 1] -= 1.0
                conv.k3.weight.copy_(w)
                conv.k3.bias.copy_(b)
                conv.k1.weight.zero_()
                conv.k1.bias.zero_()
            else:
                conv.weight.copy_(w)
                conv.bias.copy_(b)


def check_onnx(model, path, scale):
    """The exported graph must compute what the trained module computes."""
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime not installed: ONNX output not cross-checked")
        return
    x = torch.rand(1, model.colors, 23, 31)
    want = model(x).detach().numpy()
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"lr": x.numpy()})[0]
    err = float(np.abs(want - got).max())
    if err > 1e-4:
        raise SystemExit(f"{path}: ONNX output differs from the trained model by {err}")
    print(f"ONNX matches the trained model (max |diff| {err:.2e})")


if __name__ == "__main__":
    main()

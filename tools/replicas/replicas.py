"""Small random-weight replicas of published lightweight SR architectures,
exported to ONNX the way their authors' code does (torch.onnx.export, the
TorchScript exporter, opset 17, dynamic H and W), plus one ONNX Runtime
output per model for the importer's tests (issue 16).

Each replica keeps its architecture's op pattern (what the importer must
lower) at a few channels, so the files stay small enough to ship:

- carn_m   CARN-M: MeanShift (Sub/Add of constants), grouped-conv efficient
           residual blocks, cascading Concat + 1x1, grouped upsampler, x2
- pan      PAN: SC-PA blocks (Split, pixel attention: 1x1 -> Sigmoid -> Mul of
           two feature maps), nearest Resize upsampling, bilinear ILR skip, x2
- rfdn     RFDN: RFDB blocks (distillation, shallow residuals, LeakyReLU 0.05),
           ESA (strided conv, MaxPool k7 s3, bilinear Resize to Shape-derived
           sizes, Sigmoid gate), PixelShuffle, x2
- fsrcnn   FSRCNN: Y only (1 channel), PReLU, ConvTranspose upsampler, x2
- xlsr     XLSR: channel Slice, grouped conv G-blocks, Concat, Clip, x3
- espcn    ESPCN: Y only, Tanh, PixelShuffle, x3
- ecbsr    ECBSR (deploy form: its re-parameterised 3x3 convs), Y only,
           PReLU, PixelShuffle, x2
- shuffle_rt  pixel shuffle as Reshape -> Transpose -> Reshape (CRD and DCR), x2
- outlier  not an architecture: a conv reading an outlier channel, the
           layer the offline flow must keep in float, x2
- opzoo    not an architecture: one each of the remaining ops issue 16 lists
           (Tanh, Clip, HardSigmoid, HardSwish, GELU, Div, AveragePool,
           ReduceMean, reflect Pad, Resize cubic/bilinear), x2

Usage (writes <out>/<name>.onnx and <out>/<name>.io.bin):
    python3 tools/replicas/replicas.py --out assets/test-models

io.bin layout, little-endian: u32 c, h, w, then c*h*w f32 (the input, NCHW
with N = 1), then u32 c, h, w and the ONNX Runtime output likewise.
"""
import argparse
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class MeanShift(nn.Module):
    def __init__(self, sign):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1) * sign)

    def forward(self, x):
        return x + self.mean


class EResidual(nn.Module):
    def __init__(self, c, g):
        super().__init__()
        self.b = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, groups=g), nn.ReLU(True),
                               nn.Conv2d(c, c, 3, 1, 1, groups=g), nn.ReLU(True),
                               nn.Conv2d(c, c, 1))

    def forward(self, x):
        return F.relu(self.b(x) + x)


class CarnM(nn.Module):
    def __init__(self, c=16, g=4, s=2):
        super().__init__()
        self.sub, self.add = MeanShift(-1), MeanShift(1)
        self.entry = nn.Conv2d(3, c, 3, 1, 1)
        self.b1, self.b2 = EResidual(c, g), EResidual(c, g)
        self.c1, self.c2 = nn.Conv2d(2 * c, c, 1), nn.Conv2d(3 * c, c, 1)
        self.up = nn.Sequential(nn.Conv2d(c, 4 * c, 3, 1, 1, groups=g), nn.ReLU(True), nn.PixelShuffle(s))
        self.exit = nn.Conv2d(c, 3, 3, 1, 1)

    def forward(self, x):
        x = self.entry(self.sub(x))
        c0 = o0 = x
        b1 = self.b1(o0)
        c1 = torch.cat([c0, b1], 1)
        o1 = self.c1(c1)
        b2 = self.b2(o1)
        c2 = torch.cat([c1, b2], 1)
        o2 = self.c2(c2)
        return self.add(self.exit(self.up(o2)))


class PAConv(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.k2, self.k3, self.k4 = nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.Conv2d(c, c, 3, 1, 1, bias=False)

    def forward(self, x):
        y = torch.sigmoid(self.k2(x))
        return self.k4(torch.mul(self.k3(x), y))


class SCPA(nn.Module):
    def __init__(self, c):
        super().__init__()
        gw = c // 2
        self.conv1_a, self.conv1_b = nn.Conv2d(c, gw, 1, bias=False), nn.Conv2d(c, gw, 1, bias=False)
        self.k1 = nn.Conv2d(gw, gw, 3, 1, 1, bias=False)
        self.pa = PAConv(gw)
        self.conv3 = nn.Conv2d(2 * gw, c, 1, bias=False)
        self.lrelu = nn.LeakyReLU(0.2, True)

    def forward(self, x):
        a, b = self.lrelu(self.conv1_a(x)), self.lrelu(self.conv1_b(x))
        a = self.lrelu(self.k1(a))
        b = self.lrelu(self.pa(b))
        return self.conv3(torch.cat([a, b], 1)) + x


class PA(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 1)

    def forward(self, x):
        return torch.mul(x, torch.sigmoid(self.conv(x)))


class Pan(nn.Module):
    def __init__(self, c=12, u=8, s=2):
        super().__init__()
        self.s = s
        self.conv_first = nn.Conv2d(3, c, 3, 1, 1)
        self.body = nn.Sequential(SCPA(c), SCPA(c))
        self.trunk = nn.Conv2d(c, c, 3, 1, 1)
        self.upconv1, self.att1 = nn.Conv2d(c, u, 3, 1, 1), PA(u)
        self.hrconv1 = nn.Conv2d(u, u, 3, 1, 1)
        self.conv_last = nn.Conv2d(u, 3, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, True)

    def forward(self, x):
        fea = self.conv_first(x)
        fea = fea + self.trunk(self.body(fea))
        fea = self.upconv1(F.interpolate(fea, scale_factor=self.s, mode="nearest"))
        fea = self.lrelu(self.att1(fea))
        fea = self.lrelu(self.hrconv1(fea))
        out = self.conv_last(fea)
        return out + F.interpolate(x, scale_factor=self.s, mode="bilinear", align_corners=False)


class ESA(nn.Module):
    def __init__(self, c):
        super().__init__()
        f = c // 4
        self.conv1, self.conv_f = nn.Conv2d(c, f, 1), nn.Conv2d(f, f, 1)
        self.conv_max = nn.Conv2d(f, f, 3, padding=1)
        self.conv2 = nn.Conv2d(f, f, 3, stride=2, padding=0)
        self.conv3, self.conv3_ = nn.Conv2d(f, f, 3, padding=1), nn.Conv2d(f, f, 3, padding=1)
        self.conv4 = nn.Conv2d(f, c, 1)

    def forward(self, x):
        c1_ = self.conv1(x)
        c1 = self.conv2(c1_)
        v_max = F.max_pool2d(c1, kernel_size=7, stride=3)
        v_range = F.relu(self.conv_max(v_max))
        c3 = F.relu(self.conv3(v_range))
        c3 = self.conv3_(c3)
        c3 = F.interpolate(c3, (x.size(2), x.size(3)), mode="bilinear", align_corners=False)
        cf = self.conv_f(c1_)
        m = torch.sigmoid(self.conv4(c3 + cf))
        return x * m


class RFDB(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c // 2
        self.c1_d, self.c1_r = nn.Conv2d(c, d, 1), nn.Conv2d(c, c, 3, 1, 1)
        self.c2_d, self.c2_r = nn.Conv2d(c, d, 1), nn.Conv2d(c, c, 3, 1, 1)
        self.c4 = nn.Conv2d(c, d, 3, 1, 1)
        self.act = nn.LeakyReLU(0.05, True)
        self.c5 = nn.Conv2d(3 * d, c, 1)
        self.esa = ESA(c)

    def forward(self, x):
        d1 = self.act(self.c1_d(x))
        r1 = self.act(self.c1_r(x) + x)
        d2 = self.act(self.c2_d(r1))
        r2 = self.act(self.c2_r(r1) + r1)
        r4 = self.act(self.c4(r2))
        out = torch.cat([d1, d2, r4], 1)
        return self.esa(self.c5(out))


class Rfdn(nn.Module):
    def __init__(self, c=16, s=2):
        super().__init__()
        self.fea = nn.Conv2d(3, c, 3, 1, 1)
        self.b1, self.b2 = RFDB(c), RFDB(c)
        self.c = nn.Sequential(nn.Conv2d(2 * c, c, 1), nn.LeakyReLU(0.05, True))
        self.lr = nn.Conv2d(c, c, 3, 1, 1)
        self.up = nn.Sequential(nn.Conv2d(c, 3 * s * s, 3, 1, 1), nn.PixelShuffle(s))

    def forward(self, x):
        f = self.fea(x)
        b1 = self.b1(f)
        b2 = self.b2(b1)
        out = self.c(torch.cat([b1, b2], 1))
        return self.up(self.lr(out) + f)


class Fsrcnn(nn.Module):
    def __init__(self, d=16, s_=8, m=2, s=2):
        super().__init__()
        layers = [nn.Conv2d(1, d, 5, 1, 2), nn.PReLU(d), nn.Conv2d(d, s_, 1), nn.PReLU(s_)]
        for _ in range(m):
            layers += [nn.Conv2d(s_, s_, 3, 1, 1), nn.PReLU(s_)]
        layers += [nn.Conv2d(s_, d, 1), nn.PReLU(d)]
        self.body = nn.Sequential(*layers)
        self.last = nn.ConvTranspose2d(d, 1, 9, stride=s, padding=4, output_padding=s - 1)

    def forward(self, x):
        return self.last(self.body(x))


class Xlsr(nn.Module):
    def __init__(self, s=3):
        super().__init__()
        self.s = s
        self.head = nn.Conv2d(3, 16, 3, 1, 1)
        self.g1 = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, groups=4), nn.ReLU(), nn.Conv2d(8, 8, 1))
        self.g2 = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, groups=4), nn.ReLU(), nn.Conv2d(8, 8, 1))
        self.tail = nn.Conv2d(16, 3 * s * s, 3, 1, 1)

    def forward(self, x):
        h = F.relu(self.head(x))
        a, b = h[:, :8], h[:, 8:]
        a = self.g1(a) + a
        b = self.g2(torch.cat([a[:, 4:], b[:, :4]], 1))
        y = self.tail(torch.cat([a, b], 1))
        return torch.clamp(F.pixel_shuffle(y, self.s), 0.0, 1.0)


class Espcn(nn.Module):
    def __init__(self, s=3):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 16, 5, 1, 2), nn.Conv2d(16, 8, 3, 1, 1)
        self.c3 = nn.Conv2d(8, s * s, 3, 1, 1)
        self.ps = nn.PixelShuffle(s)

    def forward(self, x):
        return self.ps(self.c3(torch.tanh(self.c2(torch.tanh(self.c1(x))))))


class EcbsrDeploy(nn.Module):
    """ECBSR after re-parameterisation (each ECB: one 3x3 conv), as its repo exports."""

    def __init__(self, c=16, m=2, s=2):
        super().__init__()
        layers = [nn.Conv2d(1, c, 3, 1, 1), nn.PReLU(c)]
        for _ in range(m):
            layers += [nn.Conv2d(c, c, 3, 1, 1), nn.PReLU(c)]
        layers += [nn.Conv2d(c, s * s, 3, 1, 1)]
        self.body = nn.Sequential(*layers)
        self.ps = nn.PixelShuffle(s)

    def forward(self, x):
        return self.ps(self.body(x) + x)


class ShuffleRt(nn.Module):
    """Pixel shuffle written as view -> permute -> reshape (CRD), and its DCR
    twin, as code that predates nn.PixelShuffle (or TF exports) writes it."""

    def __init__(self, c=8, s=2):
        super().__init__()
        self.s = s
        self.a = nn.Conv2d(3, c, 3, 1, 1)
        self.b = nn.Conv2d(c, 3 * s * s, 3, 1, 1)
        self.d = nn.Conv2d(c, 3 * s * s, 3, 1, 1)

    def forward(self, x):
        n, _, h, w = x.shape
        s = self.s
        f = F.relu(self.a(x))
        y = self.b(f).view(n, 3, s, s, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, 3, h * s, w * s)
        z = self.d(f).view(n, s, s, 3, h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, 3, h * s, w * s)
        return y + z


class Outlier(nn.Module):
    """A layer better kept in float: conv `b` reads a map with one outlier
    channel (a constant 3000, as activation outliers in real networks carry),
    so even 16-bit activations are coarse (step 3000/65535 ≈ 0.046) on the
    channels that carry the image. The weights are set, not random: `a`
    passes the RGB channels through and makes the outlier, `b` copies each
    colour into its s² sub-pixels, so in float the network is exactly a
    nearest-neighbour upscaler, a real SR output with a PSNR to lose. Not an
    architecture: the offline flow's float partitions are tested on it
    (issue 16 item 2)."""

    def __init__(self, s=2):
        super().__init__()
        self.s = s
        self.a = nn.Conv2d(3, 8, 3, 1, 1)
        self.b = nn.Conv2d(8, 3 * s * s, 3, 1, 1)
        with torch.no_grad():
            for m in (self.a, self.b):
                m.weight.zero_()
                m.bias.zero_()
            for c in range(3):
                self.a.weight[c, c, 1, 1] = 1.0
                for k in range(s * s):
                    self.b.weight[c * s * s + k, c, 1, 1] = 1.0
            self.a.bias[7] = 3000.0

    def forward(self, x):
        return F.pixel_shuffle(self.b(F.relu(self.a(x))), self.s)


class OpZoo(nn.Module):
    def __init__(self, c=8):
        super().__init__()
        self.a = nn.Conv2d(3, c, 3, 1, 1)
        self.b = nn.Conv2d(c, c, 3, 1, 0)
        self.d = nn.Conv2d(c, c, 3, 1, 1, dilation=1)
        self.e = nn.Conv2d(c, 3, 3, 1, 1)
        self.gelu, self.hs, self.hsig = nn.GELU(), nn.Hardswish(), nn.Hardsigmoid()

    def forward(self, x):
        f = self.a(x)
        g = torch.tanh(f) + torch.clamp(f, -0.5, 0.5)
        g = self.hs(g) - self.hsig(f) * 0.5
        g = self.b(F.pad(g, (1, 1, 1, 1), mode="reflect"))
        g = self.gelu(g) / (1.5 + torch.sigmoid(f))
        g = g + F.avg_pool2d(g, 3, 1, 1, count_include_pad=False)
        g = g * torch.mean(g, dim=(2, 3), keepdim=True)
        g = F.leaky_relu(self.d(g), 0.1)
        up = F.interpolate(g, scale_factor=2, mode="bicubic", align_corners=False)
        up = up + F.interpolate(g, scale_factor=2, mode="bilinear", align_corners=True)
        return self.e(up)


MODELS = {
    "carn_m": (CarnM, 3), "pan": (Pan, 3), "rfdn": (Rfdn, 3), "fsrcnn": (Fsrcnn, 1),
    "xlsr": (Xlsr, 3), "espcn": (Espcn, 1), "ecbsr": (EcbsrDeploy, 1), "opzoo": (OpZoo, 3),
    "shuffle_rt": (ShuffleRt, 3), "outlier": (Outlier, 3),
}


def write_io(path, x, y):
    with open(path, "wb") as f:
        for t in (x, y):
            _, c, h, w = t.shape
            f.write(struct.pack("<3I", c, h, w))
            f.write(np.ascontiguousarray(t, dtype="<f4").tobytes())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="assets/test-models")
    ap.add_argument("--only", nargs="*")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    import onnxruntime as ort
    for name, (cls, cin) in MODELS.items():
        if a.only and name not in a.only:
            continue
        torch.manual_seed(sum(map(ord, name)))
        m = cls().eval()
        with torch.no_grad():
            # Bring the random biases near the small activations SR nets carry,
            # so every op (Clip, Sigmoid, the ESA gate) works in its live range.
            for p in m.parameters():
                if p.dim() == 1 and p.numel() > 1 and name != "outlier":
                    p.mul_(0.5)
        path = os.path.join(a.out, f"{name}.onnx")
        dummy = torch.rand(1, cin, 24, 32)
        torch.onnx.export(m, dummy, path, opset_version=17, input_names=["lr"], output_names=["sr"],
                          dynamic_axes={"lr": {2: "H", 3: "W"}, "sr": {2: "sH", 3: "sW"}}, dynamo=False)
        rng = np.random.default_rng(7)
        x = rng.random((1, cin, 27, 38), dtype=np.float32)
        y = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"lr": x})[0]
        with torch.no_grad():
            yt = m(torch.from_numpy(x)).numpy()
        assert np.abs(y - yt).max() < 1e-4, f"{name}: torch and ORT disagree"
        write_io(os.path.join(a.out, f"{name}.io.bin"), x, y)
        print(f"{name}: {os.path.getsize(path)} bytes, out {y.shape}, range [{y.min():.3f}, {y.max():.3f}]")


if __name__ == "__main__":
    main()

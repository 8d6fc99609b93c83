"""PlainSR: a super-resolution network designed for nawqsr's integer engine.

- Only 3x3 convolutions and ReLU: each conv maps onto one INT8/A16W8 kernel
  call with its activation fused into the epilogue, and a conv followed by a
  conv needs no float glue between them.
- Channel counts that are multiples of 16 fill the AVX-512 lanes (16 i32
  accumulators per register) with no remainder.
- No image-global operation (unlike IMDN's attention), so patches stream
  through the codec with no frame-wide barrier.
- Upsampling by a last conv to 3*s^2 channels and a depth-to-space (ESPCN's
  sub-pixel convolution), with the nearest-neighbour upsample of the input
  added as an anchor (ABPN, Du et al., CVPRW 2021): the network learns only the
  residual, which trains fast and keeps the output's range close to the
  input's, good for quantization.
"""
import numpy as np
import torch
from torch import nn


class RepConv(nn.Module):
    """A 3x3 conv trained with extra parallel branches (RepVGG, Ding et al. 2021;
    ECBSR, Zhang et al. 2021): 3x3 + 1x1 + identity (when in == out). All are
    linear, so they merge exactly into one 3x3 conv for export: the deployed
    network is still plain, the training sees an easier-to-optimise one."""

    def __init__(self, cin, cout):
        super().__init__()
        self.k3 = nn.Conv2d(cin, cout, 3, padding=1)
        self.k1 = nn.Conv2d(cin, cout, 1)
        self.identity = cin == cout

    def forward(self, x):
        y = self.k3(x) + self.k1(x)
        return y + x if self.identity else y

    @property
    def weight(self):
        w = self.k3.weight + nn.functional.pad(self.k1.weight, [1, 1, 1, 1])
        if self.identity:
            eye = torch.zeros_like(w)
            for c in range(w.shape[0]):
                eye[c, c, 1, 1] = 1.0
            w = w + eye
        return w

    @property
    def bias(self):
        return self.k3.bias + self.k1.bias


def fake_quant_weight(w):
    """The engine's weights quantizer (codec/src/quant/weights.rs): symmetric
    8-bit per output channel, s = max|w| / 127, round, clamp to ±127; the
    gradient passes straight through the rounding (STE)."""
    s = w.detach().abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12) / 127.0
    q = (w / s).round().clamp(-127, 127) * s
    return w + (q - w).detach()


class ActQuant(nn.Module):
    """The engine's u8 activation between two convs (Eq. 1 with x_min = 0 after
    ReLU, codec/src/quant/params.rs): q = clamp(round(x * 255 / max), 0, 255).
    `max` follows the batch maximum (moving average) in training, as the
    calibration's max over images does for the engine; STE gradient."""

    def __init__(self):
        super().__init__()
        self.register_buffer("max", torch.zeros(()))
        self.frozen = False  # set with fixed ranges (train.py --act-ranges)

    def forward(self, x):
        if self.training and not self.frozen:
            m = x.detach().amax()
            self.max.copy_(m if self.max == 0 else 0.99 * self.max + 0.01 * m)
        s = 255.0 / self.max.clamp_min(1e-6)
        q = (x * s).round().clamp(0, 255) / s
        return x + (q - x).detach()


class PlainSR(nn.Module):
    def __init__(self, scale, channels, body, rep=False, qat=False, colors=3):
        super().__init__()
        self.scale = scale
        # 3 for RGB; 1 for a luma model (issue 17): Y in, Y out, the
        # codec resizes the chroma planes of a YUV frame itself.
        self.colors = colors
        # Quantization-aware training: every conv sees its weights as the
        # engine's INT8 unit will, and every hidden activation as a u8.
        self.qat = qat
        self.act_q = nn.ModuleList([ActQuant() for _ in range(body + 1)]) if qat else None
        conv = RepConv if rep else (lambda i, o: nn.Conv2d(i, o, 3, padding=1))
        convs = [conv(colors, channels)]
        convs += [conv(channels, channels) for _ in range(body)]
        convs += [conv(channels, colors * scale * scale)]
        self.convs = nn.ModuleList(convs)
        # Start as the nearest-neighbour upsample: a small last conv.
        with torch.no_grad():
            for p in self.convs[-1].parameters():
                p.mul_(0.1 if p.dim() > 1 else 0.0)

    def forward(self, x):
        s = self.scale
        y = x
        for i, conv in enumerate(self.convs):
            if self.qat:
                y = nn.functional.conv2d(y, fake_quant_weight(conv.weight), conv.bias, padding=1)
            else:
                y = conv(y)
            if i + 1 < len(self.convs):
                y = torch.relu(y)
                if self.qat:
                    y = self.act_q[i](y)
        y = y + x.repeat(1, s * s, 1, 1)
        # Depth-to-space in ONNX's DCR order: channel (i*s + j)*C + c goes to
        # colour c, sub-pixel row i, column j (matching the repeated anchor).
        b, _, h, w = y.shape
        c = self.colors
        return y.view(b, s, s, c, h, w).permute(0, 3, 4, 1, 5, 2).reshape(b, c, h * s, w * s)

    def macs_per_pixel(self):
        return sum(c.weight.numel() for c in self.convs)  # as deployed (merged)

    def layers_numpy(self):
        """(weight, bias) of each deployed 3x3 conv (branches merged)."""
        with torch.no_grad():
            return [(c.weight.detach().numpy().copy(), c.bias.detach().numpy().copy()) for c in self.convs]

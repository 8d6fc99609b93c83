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


class PlainSR(nn.Module):
    def __init__(self, scale, channels, body):
        super().__init__()
        self.scale = scale
        convs = [nn.Conv2d(3, channels, 3, padding=1)]
        convs += [nn.Conv2d(channels, channels, 3, padding=1) for _ in range(body)]
        convs += [nn.Conv2d(channels, 3 * scale * scale, 3, padding=1)]
        self.convs = nn.ModuleList(convs)
        # Start as the nearest-neighbour upsample: a small last conv.
        with torch.no_grad():
            self.convs[-1].weight.mul_(0.1)
            self.convs[-1].bias.zero_()

    def forward(self, x):
        s = self.scale
        y = x
        for conv in self.convs[:-1]:
            y = torch.relu(conv(y))
        y = self.convs[-1](y) + x.repeat(1, s * s, 1, 1)
        # Depth-to-space in ONNX's DCR order: channel (i*s + j)*3 + c goes to
        # colour c, sub-pixel row i, column j (matching the repeated anchor).
        b, _, h, w = y.shape
        return y.view(b, s, s, 3, h, w).permute(0, 3, 4, 1, 5, 2).reshape(b, 3, h * s, w * s)

    def macs_per_pixel(self):
        return sum(c.weight.numel() for c in self.convs)

    def layers_numpy(self):
        return [(c.weight.detach().numpy().copy(), c.bias.detach().numpy().copy()) for c in self.convs]

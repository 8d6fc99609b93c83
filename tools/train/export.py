"""Writes a PlainSR network to ONNX (opset 17, input `lr`, output `sr`) from
numpy weights, node by node with the `onnx` helper.

Why not torch.onnx.export: the graph we want is tiny and fixed, and writing it
directly keeps the node set exactly what nawqsr's importer and engine run fast
(Conv, Relu, Concat, Add, DepthToSpace), with no exporter-version drift.

The graph (see model.py for the why of each part):
    lr ─ conv0 ─ relu ─ [conv_i ─ relu]×body ─ conv_last ─ add ─ DepthToSpace(DCR) ─ sr
     └──────────── concat(lr × s²) (the nearest-upsample anchor) ───┘
DCR order puts sub-pixel k of colour c at channel k·3 + c, so the anchor is the
input concatenated s² times: each HR pixel starts from its LR pixel's value.

Usage (random weights, for sizing by speed before training):
    python3 tools/train/export.py --scale 4 --channels 32 --body 3 --random out.onnx
"""
import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def export(layers, scale, path, doc=""):
    """layers: list of (weight [out,in,3,3] float32, bias [out] float32); all but
    the last are followed by ReLU. The last conv has C·scale² outputs, C the
    first conv's inputs: 3 (RGB) or 1 (a luma model, Y in and out)."""
    colors = layers[0][0].shape[1]
    assert colors in (1, 3), "the first conv must read 3 (RGB) or 1 (Y) channels"
    assert layers[-1][0].shape[0] == colors * scale * scale, "last conv must output C·s² channels"
    nodes, inits = [], []
    x = "lr"
    for i, (w, b) in enumerate(layers):
        wn, bn = f"conv{i}.weight", f"conv{i}.bias"
        inits += [numpy_helper.from_array(w.astype(np.float32), wn),
                  numpy_helper.from_array(b.astype(np.float32), bn)]
        y = f"conv{i}"
        k = w.shape[2]
        nodes.append(helper.make_node("Conv", [x, wn, bn], [y], name=y,
                                      kernel_shape=[k, k], pads=[k // 2] * 4))
        x = y
        if i + 1 < len(layers):
            nodes.append(helper.make_node("Relu", [x], [f"relu{i}"], name=f"relu{i}"))
            x = f"relu{i}"
    nodes.append(helper.make_node("Concat", ["lr"] * (scale * scale), ["anchor"], name="anchor", axis=1))
    nodes.append(helper.make_node("Add", [x, "anchor"], ["res"], name="residual"))
    nodes.append(helper.make_node("DepthToSpace", ["res"], ["sr"], name="shuffle",
                                  blocksize=scale, mode="DCR"))
    inp = helper.make_tensor_value_info("lr", TensorProto.FLOAT, [1, colors, "H", "W"])
    out = helper.make_tensor_value_info("sr", TensorProto.FLOAT, [1, colors, "sH", "sW"])
    graph = helper.make_graph(nodes, "plainsr", [inp], [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="nawqsr tools/train", doc_string=doc)
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def random_layers(scale, channels, body, seed=0, colors=3):
    rng = np.random.default_rng(seed)
    shapes = [(channels, colors)] + [(channels, channels)] * body + [(colors * scale * scale, channels)]
    out = []
    for o, i in shapes:
        std = np.sqrt(2.0 / (i * 9))
        out.append((rng.normal(0, std, (o, i, 3, 3)).astype(np.float32),
                    rng.normal(0, 0.01, o).astype(np.float32)))
    # Keep the output near the anchor so quantization ranges are realistic.
    out[-1] = (out[-1][0] * 0.05, out[-1][1] * 0.0)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, required=True)
    ap.add_argument("--channels", type=int, required=True)
    ap.add_argument("--body", type=int, required=True)
    ap.add_argument("--random", action="store_true", help="random weights (for speed sizing)")
    ap.add_argument("--luma", action="store_true", help="a luma model: Y in, Y out")
    ap.add_argument("out")
    a = ap.parse_args()
    export(random_layers(a.scale, a.channels, a.body, colors=1 if a.luma else 3), a.scale, a.out, doc="random weights")
    print(a.out)

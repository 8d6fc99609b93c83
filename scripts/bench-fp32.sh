#!/usr/bin/env bash
# Issue 16 item 4's evidence (BENCHMARKS.md "The FP32 path"): IMDN_x4 at
# 320x180 in FP32 through nawqsr's own float convs (2 threads), tract (the
# test reference, 1 thread) and ONNX Runtime (2 threads), interleaved ROUNDS
# times; median ms/frame of 5 runs each. PY is a Python with onnxruntime
# (scripts/bench-peers.sh makes target/peers-venv).
#
#   PY=target/peers-venv/bin/python scripts/bench-fp32.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
PY=${PY:-target/peers-venv/bin/python}
M=../shared/models/IMDN_x4.onnx
B=./target/release/nawqsr
cargo build --release --workspace -q
for r in $(seq "$rounds"); do
  echo "round $r"
  $B bench-model --model $M --mode fp32 --threads 2 --runs 5 2>&1 | grep median
  $B bench-model --model $M --mode tract --threads 1 --runs 3 2>&1 | grep median
  "$PY" - "$M" <<'PYEOF'
import sys, time, numpy as np, onnxruntime as ort
o = ort.SessionOptions(); o.intra_op_num_threads = 2; o.inter_op_num_threads = 1
s = ort.InferenceSession(sys.argv[1], o, providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).random((1, 3, 180, 320), dtype=np.float32)
for _ in range(2): s.run(None, {s.get_inputs()[0].name: x})
t = []
for _ in range(5):
    a = time.perf_counter(); s.run(None, {s.get_inputs()[0].name: x}); t.append((time.perf_counter() - a) * 1e3)
print(f"onnxruntime {ort.__version__} FP32 2 threads: median {sorted(t)[2]:.1f} ms/frame")
PYEOF
done

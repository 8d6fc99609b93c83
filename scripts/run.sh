#!/usr/bin/env bash
# The README's main command: install what is missing, build, and super-resolve
# the project's own sample picture. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p nawqsr
out=${1:-sample_sr.png}
model=../shared/models/IMDN_x4.onnx
if [ -f "$model" ]; then
  # hybrid: the per-layer INT8/A16W8 schedule calibrated for this model (schedules/IMDN_x4.json)
  ./target/release/nawqsr upscale assets/sample_lr.png "$out" --model "$model" --mode hybrid
else
  echo "notice: $model not found (no ../shared): upscaling with bicubic only" >&2
  ./target/release/nawqsr upscale assets/sample_lr.png "$out" --mode bicubic --scale 4
fi
echo "wrote $out" >&2

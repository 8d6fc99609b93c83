#!/usr/bin/env bash
# The README's main command: install what is missing, build, and super-resolve
# the project's own sample picture ×4 with the project's own model
# (assets/models/nawq_x4.onnx) in hybrid precision (its calibrated schedule,
# schedules/nawq_x4.json). Needs nothing from ../shared. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p nawqsr
out=${1:-sample_sr.png}
./target/release/nawqsr upscale assets/sample_lr.png "$out" --scale 4
echo "wrote $out" >&2

#!/usr/bin/env bash
# The README's main command: install what is missing, build, and enhance a
# low-resolution H.264 stream: the project's own clip (assets/clips/
# city_320x180.mp4, rendered by tools/make_clip.py; re-rendered if missing) is
# decoded, super-resolved ×2 by the bundled model in hybrid precision (its
# calibrated schedule) through the nawqsr element, and written as an MP4 with
# a progress bar and a closing telemetry line (fps, latency p50/p99, mode,
# drops). Then, as a second example, the sample picture ×4. Needs nothing from
# ../shared. Idempotent.
#   scripts/run.sh [OUT.mp4]     (default city_sr.mp4)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# `--workspace`: the same build (and feature set) as the tests, so running
# both commands builds once.
cargo build --release --workspace
clip=assets/clips/city_320x180.mp4
[ -f "$clip" ] || python3 tools/make_clip.py "$clip"
out=${1:-city_sr.mp4}
./target/release/nawqsr upscale "$clip" "$out" --scale 2
echo "wrote $out (play it: ./target/release/nawqsr play $out)" >&2
./target/release/nawqsr upscale assets/sample_lr.png sample_sr.png --scale 4
echo "wrote sample_sr.png" >&2

#!/usr/bin/env bash
# Issue 15's element target (BENCHMARKS.md "Element against bench-model"):
# the pipeline of the issue (flower_720p.h264 scaled to 960x540, I420 or RGB
# caps, a queue, nawqsr with its defaults, fakesink sync=false) against
# `nawqsr bench-model --io rgb` for the same model (bundled nawq_x2, hybrid,
# given as model= since YUV caps would run the luma model, issue 17)
# and size, ROUNDS interleaved rounds. The element's fps is the median of its
# nawqsr-stats windows of 50 frames, the first window (start-up) left out.
#
#   scripts/bench-element.sh [ROUNDS]      # default 3
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
clip=../shared/clips/flower_720p.h264
[ -f "$clip" ] || { echo "skipping: $clip not found"; exit 0; }
cargo build --release --workspace -q
export GST_PLUGIN_PATH=$PWD/target/release
out=target/element
mkdir -p "$out"
: > "$out/fps.txt"
for r in $(seq "$rounds"); do
  for fmt in I420 RGB; do
    gst-launch-1.0 -m filesrc location="$clip" ! h264parse ! avdec_h264 ! videoscale \
      ! video/x-raw,width=960,height=540 ! videoconvert ! video/x-raw,format=$fmt ! queue \
      ! nawqsr model=assets/models/nawq_x2.onnx stats-interval=50 ! fakesink sync=false 2>&1 \
      | grep -o 'fps=(double)[0-9.]*' | cut -d')' -f2 | tail -n +2 \
      | sed "s/^/$fmt /" >> "$out/fps.txt"
  done
  ./target/release/nawqsr bench-model --model assets/models/nawq_x2.onnx --input-size 960x540 \
    --threads 2 --io rgb --mode hybrid --json > "$out/model-$r.json" 2> /dev/null
  python3 -c "import json,sys; print('model', 1e3 / json.load(open(sys.argv[1]))['median_ms'])" \
    "$out/model-$r.json" >> "$out/fps.txt"
done
python3 - "$out/fps.txt" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = {k: statistics.median(float(r[1]) for r in rows if r[0] == k) for k in ("I420", "RGB", "model")}
print(f"element I420 {med['I420']:.1f} fps ({100 * med['I420'] / med['model']:.0f} %), "
      f"RGB {med['RGB']:.1f} fps ({100 * med['RGB'] / med['model']:.0f} %) of bench-model --io rgb "
      f"{med['model']:.1f} fps (medians; nawq_x2 hybrid 960x540, 2 threads)")
PY

#!/usr/bin/env bash
# Issue 17's speed target (BENCHMARKS.md "YUV-native video path"): the
# element pipeline of the issue (flower_720p.h264 scaled to 960x540, a queue,
# nawqsr in hybrid, fakesink sync=false) on
#   I420 with the default (the bundled luma model nawq_luma_x2, frame stays YUV),
#   I420 with the RGB model nawq_x2 (YUV -> RGB -> network -> YUV),
#   RGB caps (the RGB model),
#   I420_10LE with the default (10-bit, luma model),
# ROUNDS interleaved rounds; fps = median of the nawqsr-stats windows of 50
# frames, the first (start-up) left out.
#
#   scripts/bench-yuv.sh [ROUNDS]      # default 3
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
clip=../shared/clips/flower_720p.h264
[ -f "$clip" ] || { echo "skipping: $clip not found"; exit 0; }
cargo build --release --workspace -q
export GST_PLUGIN_PATH=$PWD/target/release
out=target/element
mkdir -p "$out"
: > "$out/yuv-fps.txt"
run() { # name, caps format, element properties
  gst-launch-1.0 -m filesrc location="$clip" ! h264parse ! avdec_h264 ! videoscale \
    ! video/x-raw,width=960,height=540 ! videoconvert ! video/x-raw,format=$2 ! queue \
    ! nawqsr $3 stats-interval=50 piqe-interval=0 ! fakesink sync=false 2>&1 \
    | grep -o 'fps=(double)[0-9.]*' | cut -d')' -f2 | tail -n +2 \
    | sed "s/^/$1 /" >> "$out/yuv-fps.txt"
}
for r in $(seq "$rounds"); do
  run luma-I420 I420 ""
  run rgbmodel-I420 I420 "model=assets/models/nawq_x2.onnx"
  run rgb-RGB RGB ""
  run luma-I420_10LE I420_10LE ""
done
python3 - "$out/yuv-fps.txt" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
names = ("luma-I420", "rgbmodel-I420", "rgb-RGB", "luma-I420_10LE")
med = {k: statistics.median(float(r[1]) for r in rows if r[0] == k) for k in names}
for k in names:
    print(f"{k:15s} {med[k]:6.1f} fps  ({med[k] / med['rgbmodel-I420']:.2f}x the RGB model on I420)")
PY

#!/usr/bin/env bash
# Issue 17's speed target (BENCHMARKS.md "YUV-native video path"): the
# element pipeline of the issue (flower_720p.h264 scaled to 960x540, a queue,
# nawqsr in hybrid, fakesink sync=false) on
#   I420 with the default (the bundled luma model nawq_luma_x2, frame stays YUV),
#   I420 with the RGB model nawq_x2 (YUV -> RGB -> network -> YUV),
#   RGB caps (the RGB model),
#   I420_10LE with the default (10-bit, luma model),
# ROUNDS interleaved rounds; fps = median of the nawqsr-stats windows of 50
# frames, the first (start-up) left out. Then the video-quality target:
# `nawqsr bench --yuv` (I420 in and out of the codec, as the element) on
# flower_720p downscaled to 640x360 (x2) and 320x180 (x4), luma model against
# the RGB model of the same scale: Y PSNR against the original frames, and
# latency (60 frames, hybrid, 2 threads).
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

for s in 2 4; do
  size=$([ $s = 2 ] && echo 640x360 || echo 320x180)
  for fam in luma rgb; do
    model=(); [ $fam = rgb ] && model=(--model assets/models/nawq_x$s.onnx)
    ./target/release/nawqsr bench "$clip" --input-size $size --scale $s --modes hybrid --frames 60 --yuv \
      --threads 2 "${model[@]}" --json "$out/yuv-x$s-$fam.json" 2> /dev/null
  done
done
python3 - "$out" <<'PY'
import json, sys
for s in (2, 4):
    for fam in ("luma", "rgb"):
        m = json.load(open(f"{sys.argv[1]}/yuv-x{s}-{fam}.json"))["clips"][0]["modes"][0]
        ch = m.get("chroma_ms_per_frame")
        print(f"x{s} {fam:4s}: Y PSNR {m['quality']['mean_psnr']:.3f} dB, SSIM {m['quality']['mean_ssim']:.4f}, "
              f"latency p50 {m['latency_ms']['p50']:.1f} ms" + (f", chroma {ch:.2f} ms/frame" if ch else ""))
PY

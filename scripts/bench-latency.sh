#!/usr/bin/env bash
# Issue 19's evidence (BENCHMARKS.md "Latency-targeted precision"): profile
# accuracy on three models, the IMDN_RTC_x2 960x540 quality/latency front with
# three targets between the INT8 and A16W8 times (chosen plans timed), and the
# element on a live source under a deadline. Run on a quiet machine.
#
#   scripts/bench-latency.sh            # writes target/latency/*, the front
#                                       # schedule and docs/front-imdn-rtc.svg
set -euo pipefail
cd "$(dirname "$0")/.."
B=./target/release/nawqsr
M=../shared/models
out=target/latency
mkdir -p "$out" schedules/fronts
cargo build --release --workspace -q

# 1. Profiles: per-layer times, switch costs, predicted vs measured.
$B profile --model assets/models/nawq_x2.onnx --input-size 960x540 --rounds 9 --frames 18 --out "$out/nawq_x2-960x540.json" | tee "$out/profile-nawq_x2.txt"
$B profile --model $M/IMDN_x4.onnx --input-size 320x180 --out "$out/IMDN_x4-320x180.json" | tee "$out/profile-IMDN_x4.txt"
$B profile --model $M/IMDN_RTC_x2.onnx --input-size 960x540 --out "$out/IMDN_RTC_x2-960x540.json" | tee "$out/profile-IMDN_RTC_x2.txt"

# 2. The front on IMDN_RTC_x2's calibration (as schedules/IMDN_RTC_x2.json:
#    seed 24301, K = 1), the profile above, a target in the middle, every
#    reported target's plan timed (--verify).
read -r t8 t16 < <(python3 -c "import json;p=json.load(open('$out/IMDN_RTC_x2-960x540.json'))['uniform_ms'];print(p['int8'],p['a16w8'])")
mid=$(python3 -c "print(round($t8 + 0.5 * ($t16 - $t8), 1))")
$B calibrate --model $M/IMDN_RTC_x2.onnx --scale 2 --tolerance 0.1 --energy 1.0 --seed 24301 \
  --profile "$out/IMDN_RTC_x2-960x540.json" --latency-target "$mid" --pareto --verify \
  --out schedules/fronts/IMDN_RTC_x2-front.json --json > "$out/front-IMDN_RTC_x2.json" 2> "$out/front-IMDN_RTC_x2.txt"
cat "$out/front-IMDN_RTC_x2.txt"
python3 tools/plot_front.py "$out/front-IMDN_RTC_x2.json" docs/front-imdn-rtc.svg

# 3. The element on a live 3 fps source with that target (below the A16W8 time).
#    reuse=off: the ball pattern's background is static, and temporal reuse
#    would take most patches from the previous frame (no deadline pressure).
export GST_PLUGIN_PATH=$PWD/target/release
timeout 60 gst-launch-1.0 -m videotestsrc is-live=true num-buffers=90 pattern=ball \
  ! video/x-raw,format=RGB,width=960,height=540,framerate=3/1 \
  ! nawqsr model=$M/IMDN_RTC_x2.onnx schedule=schedules/fronts/IMDN_RTC_x2-front.json latency-target="$mid" reuse=off stats-interval=10 \
  ! fakesink sync=true 2>&1 | grep -E "nawqsr-(stats|plan-switch)" | tee "$out/live-IMDN_RTC_x2.txt"

# 4. The PIQE sampler's cost: the bundled x2 model on foreman (CIF -> 704x576),
#    sampling every 30 frames (the default) and every frame.
for n in 30 1; do
  echo "piqe-interval=$n"
  gst-launch-1.0 -m filesrc location=../shared/clips/foreman_cif_352x288.h264 ! h264parse ! avdec_h264 \
    ! videoconvert ! video/x-raw,format=I420 ! nawqsr piqe-interval=$n stats-interval=50 ! fakesink 2>&1 \
    | grep -E "nawqsr-stats" | tail -1 | tee -a "$out/piqe-cost.txt"
done

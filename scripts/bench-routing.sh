#!/usr/bin/env bash
# Issue 18 item 4's evidence (BENCHMARKS.md "Difficulty routing"): the bundled
# x2 schedule's routing threshold recalibrated for 0.05 dB (same seed and
# images, so the same threshold), checked on Set14 (PSNR and time, routing on
# and off, interleaved); then `nawqsr bench` with --routing on and off,
# interleaved ROUNDS times, on flower_720p downscaled to 640x360 and on the
# project's call clip, both with --reuse off. Run on a quiet machine.
#
#   scripts/bench-routing.sh [ROUNDS]      # default 5
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
B=./target/release/nawqsr
cargo build --release --workspace -q
out=target/routing
mkdir -p "$out"
if [ -d ../shared/datasets/Set14 ]; then
  $B calibrate-routing --schedule schedules/nawq_x2.json --out "$out/nawq_x2.json" \
    --check ../shared/datasets/Set14 --rounds "$rounds" --json "$out/set14.json" 2>&1 | grep -E '^routing: the|mean PSNR'
  # The bound on routing's speed-up with the threshold fitted to the content
  # itself (an oracle): Set14, and flower's 1280x720 frames at 5 fps.
  echo "oracle threshold, Set14:"
  $B calibrate-routing --schedule schedules/nawq_x2.json --out "$out/oracle.json" \
    --calib ../shared/datasets/Set14 --calib-images 14 --max-side 100000 2>&1 | grep '^routing'
fi
if [ -f ../shared/clips/flower_720p.h264 ]; then
  rm -rf "$out/flower" && mkdir -p "$out/flower"
  gst-launch-1.0 -q filesrc location=../shared/clips/flower_720p.h264 ! h264parse ! avdec_h264 \
    ! videoconvert ! video/x-raw,format=RGB ! videorate drop-only=true ! video/x-raw,framerate=5/1 \
    ! pngenc ! multifilesink location="$out/flower/f%03d.png"
  echo "oracle threshold, flower_720p frames:"
  $B calibrate-routing --schedule schedules/nawq_x2.json --out "$out/oracle.json" \
    --calib "$out/flower" --calib-images 1000 --max-side 1280 2>&1 | grep '^routing'
fi
runs=("assets/clips/call_320x180.mp4|")
[ -f ../shared/clips/flower_720p.h264 ] && runs+=("../shared/clips/flower_720p.h264|--input-size 640x360 --frames 60")
for run in "${runs[@]}"; do
  clip=${run%%|*}; extra=${run#*|}
  name=$(basename "$clip")
  : > "$out/$name.txt"
  for r in $(seq "$rounds"); do
    for routing in on off; do
      # shellcheck disable=SC2086
      $B bench "$clip" --modes hybrid --reuse off --routing "$routing" $extra \
        --json "$out/$name-$routing-$r.json" 2> /dev/null
      python3 - "$out/$name-$routing-$r.json" "$routing" >> "$out/$name.txt" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["clips"][0]["modes"][0]
q = m.get("quality") or {}
print(sys.argv[2], round(m["fps"], 2), round(m["routed"], 4), q.get("mean_psnr", "-"))
PY
    done
  done
  python3 - "$out/$name.txt" "$name" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = lambda k, i: statistics.median(float(r[i]) for r in rows if r[0] == k)
psnr = {k: next((r[3] for r in rows if r[0] == k), "-") for k in ("on", "off")}
print(f"{sys.argv[2]}: routing on {med('on', 1):.1f} fps ({100 * med('on', 2):.0f} % routed, "
      f"PSNR {psnr['on']}), off {med('off', 1):.1f} fps (PSNR {psnr['off']}), "
      f"x{med('on', 1) / med('off', 1):.2f} (medians of {len(rows) // 2} interleaved runs)")
PY
done

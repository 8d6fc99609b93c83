#!/usr/bin/env bash
# Quality and speed of the bundled models (assets/models/nawq_x{2,3,4}.onnx), the
# table of BENCHMARKS.md "The bundled models". Quality needs ../shared (Set5,
# Set14); speed does not.
# Speed: RGB u8 frame in and out (`bench-model --io rgb`), median ms/frame of
# --runs after warm-up, repeated --rounds times (modes interleaved); the median
# of the rounds' medians is reported (this machine is shared and noisy).
#   scripts/bench-models.sh [--runs N] [--rounds N] [--threads N] [--speed-only]
# --speed-only skips quality (host-independent: every kernel level computes the
# same integers) to time a second host quickly.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=15
rounds=3
threads=2
quality=1
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --speed-only) quality=0; shift ;;
    *) echo "bench-models.sh: unknown argument $1 (expected --runs N, --rounds N, --threads N, --speed-only)" >&2; exit 2 ;;
  esac
done
cargo build --release -p nawqsr >&2
bin=./target/release/nawqsr
data=../shared/datasets
psnr() { # model scale dataset mode
  "$bin" eval --model "$1" --scale "$2" --dataset "$data/$3" --mode "$4" --schedule "schedules/nawq_x$2.json" --json \
    | python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["mean_psnr"])'
}
echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs, kernel level $("$bin" bench-model --model assets/models/nawq_x4.onnx --input-size 16x16 --runs 1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["level"])'), load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%RZ)"
echo "| model | LR → SR | Set5 FP32 | Set5 hybrid | Set5 bicubic | Set14 FP32 | Set14 hybrid | Set14 bicubic | hybrid ms/frame | fps | int8 ms | a16w8 ms |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for spec in 2:960x540 3:640x360 4:320x180; do
  s=${spec%%:*}; size=${spec##*:}
  m=assets/models/nawq_x$s.onnx
  w=${size%x*}; h=${size#*x}
  q="- | - | - | - | - | -"
  if [ "$quality" = 1 ] && [ -d "$data/Set5" ]; then
    q="$(psnr $m $s Set5 fp32) | $(psnr $m $s Set5 hybrid) | $(psnr $m $s Set5 bicubic) | $(psnr $m $s Set14 fp32) | $(psnr $m $s Set14 hybrid) | $(psnr $m $s Set14 bicubic)"
  fi
  one() {
    "$bin" bench-model --model "$m" --input-size "$size" --mode "$1" --io rgb --threads "$threads" --runs "$runs" --json \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["median_ms"])'
  }
  declare -A t=([hybrid]="" [int8]="" [a16w8]="")
  for _ in $(seq "$rounds"); do
    for mode in hybrid int8 a16w8; do t[$mode]+="$(one $mode) "; done
  done
  med() { python3 -c "import statistics,sys; print('%.1f' % statistics.median(map(float, sys.argv[1:])))" $1; }
  hy=$(med "${t[hybrid]}"); i8=$(med "${t[int8]}"); a16=$(med "${t[a16w8]}")
  fps=$(python3 -c "print(f'{1000/$hy:.0f}')")
  echo "| nawq_x$s | $size → $((w*s))x$((h*s)) | $q | **$hy** | $fps | $i8 | $a16 |"
done

#!/usr/bin/env bash
# Issue 16's evidence (BENCHMARKS.md "Any ONNX SR model"): the replicas of
# published architectures in assets/test-models (tools/replicas/replicas.py),
# each calibrated (a schedule for hybrid), then `nawqsr bench-model` at
# 320x180 on 2 threads in every mode, with the FP32 path against tract on the
# same model. Run on a quiet machine.
#
#   scripts/bench-replicas.sh [RUNS]      # timed runs per cell, default 5
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
B=./target/release/nawqsr
cargo build --release --workspace -q
out=target/replicas
mkdir -p "$out"
printf '| model | scale | fp32 | fp32w8 | int8 | a16w8 | hybrid | tract (1 thread) |\n|---|---|---|---|---|---|---|---|\n'
for m in carn_m pan rfdn fsrcnn xlsr espcn ecbsr opzoo shuffle_rt; do
  model=assets/test-models/$m.onnx
  s=2; case $m in xlsr|espcn) s=3;; esac
  if [ -d ../shared/datasets/train ] && [ ! -f "$out/$m.json" ]; then
    $B calibrate --model "$model" --scale $s --out "$out/$m.json" > "$out/$m.calibrate.log" 2>&1
  fi
  row="| $m | x$s"
  for mode in fp32 fp32w8 int8 a16w8 hybrid tract; do
    extra=(--threads 2)
    [ "$mode" = hybrid ] && extra+=(--schedule "$out/$m.json")
    [ "$mode" = tract ] && extra=(--threads 1)
    ms=$($B bench-model --model "$model" --mode $mode --runs "$runs" --json "${extra[@]}" 2>/dev/null \
      | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["median_ms"],1))' 2>/dev/null || echo "-")
    row="$row | $ms"
  done
  echo "$row |"
done

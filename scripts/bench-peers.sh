#!/usr/bin/env bash
# End-to-end model speed of nawqsr against its peers, in one run, 2 threads each
# ("Fast kernels", benchmarks 3 and 4):
#   IMDN_x4      320x180 -> 1280x720   (Set5 PSNR at x4)
#   IMDN_RTC_x2  960x540 -> 1920x1080  (Set5 PSNR at x2)
# engines: nawqsr uniform INT8 and A16W8 (`nawqsr bench-model`, `nawqsr eval`);
#          ONNX Runtime FP32 and static INT8 (QOperator, per-channel weights);
#          OpenVINO FP32, BF16 (inference precision hint) and INT8 (from a QDQ model).
# Prints a Markdown table (ms/frame = median of --runs timed runs after warm-up;
# with --rounds R > 1 (default 3) every engine is measured R times, in reversed
# order every other round, and ms/frame is the median of its least-disturbed
# round (this machine is shared: load only adds time); every round is listed;
# fps, ratio to nawqsr INT8 and A16W8, Set5 PSNR, max RSS of each process).
#
# usage: scripts/bench-peers.sh [--runs N] [--rounds R] [--warmup N] [--threads N] [--json FILE]
#                               [--models IMDN_x4,IMDN_RTC_x2,nawq_x2[:960x540]] [--no-build]
# --models: names of ONNX files in $NAWQSR_SHARED/models or assets/models (the
# bundled RGB models too); the scale comes from the name's _xN, the LR size
# from the scale (x2 960x540, x3 640x360, x4 320x180) unless given after ':'.
# env:   NAWQSR_SHARED (default ../shared), KEEP_TMP=1 keeps the temp dir.
#
# Peers are installed from PyPI into target/peers-venv (idempotent; the system
# Python is left alone). Quantized models go to a temp dir, never the repo.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

RUNS=9
ROUNDS=3
WARMUP=2
THREADS=2
JSON_OUT=""
MODELS="IMDN_x4,IMDN_RTC_x2"
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --json) JSON_OUT=$(realpath -m "$2"); shift 2 ;;
    --models) MODELS=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h|--help) sed -n 2,20p "$0"; exit 0 ;;
    *) echo "bench-peers: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$RUNS" -ge 7 ] || { echo "bench-peers: --runs must be >= 7" >&2; exit 2; }

SHARED=${NAWQSR_SHARED:-$ROOT/../shared}
if [ ! -d "$SHARED/models" ] || [ ! -d "$SHARED/datasets/Set5_matlab_lr" ]; then
  echo "bench-peers: notice: $SHARED (models, datasets) not found: nothing to benchmark" >&2
  exit 0
fi
SHARED=$(cd "$SHARED" && pwd)

log() { echo "bench-peers: $*" >&2; }

# ---- build nawqsr (others may be mid-edit: retry a few times)
BIN=$ROOT/target/release/nawqsr
if [ "$BUILD" = 1 ]; then
  for attempt in 1 2 3 4 5 6; do
    if cargo build --release -p nawqsr >&2; then break; fi
    [ "$attempt" = 6 ] && { log "cargo build failed 6 times"; exit 1; }
    log "build failed (attempt $attempt; the tree may be mid-edit): retrying in 60 s"
    sleep 60
  done
fi
[ -x "$BIN" ] || { log "$BIN missing"; exit 1; }

# ---- /usr/bin/time (GNU time) for max RSS
if [ ! -x /usr/bin/time ]; then
  log "installing GNU time"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq time >/dev/null
fi

# ---- peers: a venv under target/ (idempotent)
VENV=$ROOT/target/peers-venv
PY=$VENV/bin/python
[ -x "$PY" ] || python3 -m venv "$VENV"
if ! "$PY" -c "import onnxruntime, openvino, onnx, numpy, PIL" 2>/dev/null; then
  log "installing onnxruntime openvino onnx numpy pillow into $VENV"
  "$PY" -m pip install --quiet --upgrade pip
  "$PY" -m pip install --quiet onnxruntime openvino onnx numpy pillow
fi
HELPER="$PY $ROOT/scripts/bench_peers.py"

export OMP_NUM_THREADS=$THREADS
TMP=$(mktemp -d -t nawqsr-peers.XXXXXX)
if [ "${KEEP_TMP:-0}" = 1 ]; then log "temp dir kept: $TMP"; else trap 'rm -rf "$TMP"' EXIT; fi
RES=$TMP/results
mkdir -p "$RES"

VER=$("$BIN" --version 2>/dev/null | head -1 | awk '{print $2}')
load() { cut -d' ' -f1 /proc/loadavg; }
log "start: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $THREADS threads, $RUNS runs after $WARMUP warm-up"

IFS=, read -r -a MODEL_LIST <<<"$MODELS"
for name in "${MODEL_LIST[@]}"; do
  size=""
  case "$name" in *:*) size=${name#*:}; name=${name%%:*} ;; esac
  model=$SHARED/models/$name.onnx
  [ -f "$model" ] || model=$ROOT/assets/models/$name.onnx
  [ -f "$model" ] || { log "--models: $name.onnx is in neither $SHARED/models nor assets/models"; exit 2; }
  scale=$(sed -n 's/.*_x\([234]\).*/\1/p' <<<"$name")
  [ -n "$scale" ] || { log "--models: $name: no _x2/_x3/_x4 in the name to take the scale from"; exit 2; }
  if [ -z "$size" ]; then
    case "$scale" in 2) size=960x540 ;; 3) size=640x360 ;; 4) size=320x180 ;; esac
  fi
  set5=$SHARED/datasets/Set5
  lrdir=$SHARED/datasets/Set5_matlab_lr/x$scale

  # static INT8 models for the peers, calibrated on 10 LR crops of the training set
  log "quantizing $name (ORT QOperator + QDQ) into $TMP"
  $HELPER quantize --model "$model" --name "$name" --scale "$scale" --train "$SHARED/datasets/train" \
    --out-dir "$TMP" 2> >(grep -v "pre-process" >&2)

  # Set5 quality of nawqsr (deterministic: once)
  for mode in int8 a16w8; do
    log "nawqsr eval $mode $name (Set5 x$scale)"
    "$BIN" eval --model "$model" --dataset "$set5" --scale "$scale" --mode "$mode" --threads "$THREADS" --json \
      >"$TMP/$name.$mode.eval.json"
  done

  nawqsr_bench() {  # mode round
    local t=$TMP/$name.$1.r$2
    local l; l=$(load)
    log "round $2: nawqsr $1 $name $size"
    /usr/bin/time -v -o "$t.time" \
      "$BIN" bench-model --model "$model" --input-size "$size" --mode "$1" --threads "$THREADS" --runs "$RUNS" --json \
      >"$t.bench.json"
    $HELPER nawqsr-row --bench "$t.bench.json" --eval "$TMP/$name.$1.eval.json" --time-file "$t.time" \
      --model-name "$name" --scale "$scale" --input-size "$size" --version "$VER" --loadavg "$l" \
      --out "$RES/$name.nawqsr.$1.r$2.row.json"
  }
  peer() {  # engine precision model-file round (Set5 PSNR in round 1 only: it is deterministic)
    local row=$RES/$name.$1.$2.r$4.row.json
    local q=(); [ "$4" = 1 ] && q=(--set5-lr "$lrdir")
    log "round $4: $1 $2 $name $size"
    /usr/bin/time -v -o "$TMP/$name.$1.$2.r$4.time" \
      $HELPER run --engine "$1" --precision "$2" --model-file "$3" --model-name "$name" --scale "$scale" \
      --input-size "$size" --threads "$THREADS" --runs "$RUNS" --warmup "$WARMUP" "${q[@]}" --out "$row"
    $HELPER add-rss --row "$row" --time-file "$TMP/$name.$1.$2.r$4.time"
  }
  steps=("nawqsr_bench int8" "nawqsr_bench a16w8"
         "peer ort fp32 $model" "peer ort int8 $TMP/${name}_int8_qop.onnx"
         "peer ov fp32 $model" "peer ov bf16 $model" "peer ov int8 $TMP/${name}_int8_qdq.onnx")
  for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2 == 1)); then order=("${steps[@]}"); else
      order=(); for ((i = ${#steps[@]} - 1; i >= 0; i--)); do order+=("${steps[i]}"); done
    fi
    for st in "${order[@]}"; do
      read -r -a cmd <<<"$st"
      "${cmd[@]}" "$r"
    done
  done
done

log "end: load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "nawqsr vs peers ($(date -u +%Y-%m-%dT%H:%MZ), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs)"
echo
$HELPER report --results "$RES" --model-order "$(sed "s/:[^,]*//g" <<<"$MODELS")" ${JSON_OUT:+--json "$JSON_OUT"}

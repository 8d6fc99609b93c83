#!/usr/bin/env bash
# Issue 18's evidence (BENCHMARKS.md "Temporal reuse"): `nawqsr bench` in
# hybrid mode with --reuse exact, tolerant (threshold 4) and off, interleaved,
# ROUNDS times per clip; per clip the median fps of each setting, the reused
# share, tolerant's PSNR against recomputing, and the ratios to off. Run on a
# quiet machine.
#
#   scripts/bench-reuse.sh [ROUNDS]      # default 5
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
B=./target/release/nawqsr
cargo build --release --workspace -q
clips=(assets/clips/call_320x180.mp4)
for c in container_qcif_176x144.h264 foreman_cif_352x288.h264; do
  [ -f "../shared/clips/$c" ] && clips+=("../shared/clips/$c")
done
out=target/reuse
mkdir -p "$out"
for clip in "${clips[@]}"; do
  name=$(basename "$clip")
  : > "$out/$name.txt"
  for r in $(seq "$rounds"); do
    for reuse in exact tolerant off; do
      $B bench "$clip" --modes hybrid --reuse "$reuse" --reuse-threshold 4 --json "$out/$name-$reuse-$r.json" 2> /dev/null
      python3 - "$out/$name-$reuse-$r.json" "$reuse" >> "$out/$name.txt" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))["clips"][0]["modes"][0]
print(sys.argv[2], round(m["fps"], 2), round(m["reused"], 4), m["reuse_psnr_db"] or "-")
EOF
    done
  done
  python3 - "$out/$name.txt" "$name" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
ks = ("exact", "tolerant", "off")
fps = {k: statistics.median(float(r[1]) for r in rows if r[0] == k) for k in ks}
reused = {k: statistics.median(float(r[2]) for r in rows if r[0] == k) for k in ks}
psnr = [float(r[3]) for r in rows if r[0] == "tolerant" and r[3] != "-"]
psnr = f"{statistics.median(psnr):.1f} dB" if psnr else "identical"
print(f"{sys.argv[2]}: exact {fps['exact']:.1f} fps ({100 * reused['exact']:.0f} % reused, "
      f"x{fps['exact'] / fps['off']:.2f}); tolerant-4 {fps['tolerant']:.1f} fps "
      f"({100 * reused['tolerant']:.0f} % reused, x{fps['tolerant'] / fps['off']:.2f}, {psnr} vs recomputing); "
      f"off {fps['off']:.1f} fps (medians of {len(rows) // 3} interleaved runs)")
EOF
done

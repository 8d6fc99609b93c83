#!/usr/bin/env bash
# Issue 18's evidence (BENCHMARKS.md "Temporal reuse"): `nawqsr bench` in
# hybrid mode with --reuse exact and --reuse off, interleaved, ROUNDS times
# per clip; prints each run's fps and reused share, then per clip the median
# fps of each setting and their ratio. Run on a quiet machine.
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
    for reuse in exact off; do
      $B bench "$clip" --modes hybrid --reuse "$reuse" --json "$out/$name-$reuse-$r.json" 2> /dev/null
      python3 - "$out/$name-$reuse-$r.json" "$reuse" >> "$out/$name.txt" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))["clips"][0]["modes"][0]
print(sys.argv[2], round(m["fps"], 2), round(m["reused"], 4))
EOF
    done
  done
  python3 - "$out/$name.txt" "$name" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
fps = {k: statistics.median(float(r[1]) for r in rows if r[0] == k) for k in ("exact", "off")}
reused = statistics.median(float(r[2]) for r in rows if r[0] == "exact")
print(f"{sys.argv[2]}: reuse exact {fps['exact']:.1f} fps ({100 * reused:.0f} % of patches reused), "
      f"off {fps['off']:.1f} fps, ratio {fps['exact'] / fps['off']:.2f} (medians of {len(rows) // 2} interleaved runs)")
EOF
done

#!/usr/bin/env bash
# The README's test command (and exactly what .ci/run runs): install what is
# missing, then build and run every test of the workspace in release mode
# (the models run through tract and the integer engine; debug builds are too slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --release --workspace

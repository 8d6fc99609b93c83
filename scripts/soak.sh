#!/usr/bin/env bash
# Soak test of the nawqsr element: a live 30 fps H.264 stream (videotestsrc →
# x264enc → h264parse → avdec_h264, in-process) through nawqsr (bundled ×2
# model, hybrid) to a synchronised fakesink for MINUTES (default 30), sampling
# the process's RSS and open fds every 10 s. Ends with exactly one line:
#   soak: minutes M frames_in N frames_out N drops N rss_mb_at_1min X rss_mb_last Y rss_mb_max Z fds_first A fds_last B
# and exits non-zero if frames were lost beyond counted QoS drops, fds grew, or
# (≥ 5 minutes) RSS grew by more than 2 MB after the first minute.
# CI runs the same test for 1 minute as part of `cargo test --workspace`
# (plugins/tests/soak.rs, NAWQSR_SOAK_MINUTES unset).
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-30}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
# `--workspace` keeps the feature set (and so the build) the same as CI's.
NAWQSR_SOAK_MINUTES="$minutes" cargo test --release --workspace --test soak -q -- --nocapture >"$log" 2>&1 || status=$?
grep -v '^soak: ' "$log" >&2 || true
grep '^soak: ' "$log" | tail -n 1 || { echo "soak: no summary line (see the log above)" >&2; status=1; }
exit "$status"

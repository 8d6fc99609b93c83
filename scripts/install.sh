#!/usr/bin/env bash
# Installs nawqsr for the current user, idempotently:
#  - the `nawqsr` binary into ~/.cargo/bin (cargo install --path player);
#  - the GStreamer plugin libgstnawqsr.so into the user's plugin directory
#    (~/.local/share/gstreamer-1.0/plugins, or $XDG_DATA_HOME/gstreamer-1.0/plugins),
#    where GStreamer looks without GST_PLUGIN_PATH, so `gst-inspect-1.0 nawqsr` works.
# Models and schedules are compiled into both, so the checkout may be deleted
# afterwards. Run again to update; `scripts/install.sh --uninstall` removes both.
set -euo pipefail
cd "$(dirname "$0")/.."
plugins="${XDG_DATA_HOME:-$HOME/.local/share}/gstreamer-1.0/plugins"
if [ "${1:-}" = "--uninstall" ]; then
  cargo uninstall nawqsr 2>/dev/null || true
  rm -f "$plugins/libgstnawqsr.so"
  echo "install: removed nawqsr and $plugins/libgstnawqsr.so" >&2
  exit 0
fi
bash scripts/setup.sh
cargo install --locked --path player
cargo build --release --workspace
mkdir -p "$plugins"
# Copy to a temporary name and rename: a running GStreamer process that has the
# old file mapped keeps its copy.
cp target/release/libgstnawqsr.so "$plugins/.libgstnawqsr.so.new"
mv -f "$plugins/.libgstnawqsr.so.new" "$plugins/libgstnawqsr.so"
echo "install: nawqsr → $(command -v nawqsr || echo "$HOME/.cargo/bin/nawqsr"), plugin → $plugins/libgstnawqsr.so" >&2
gst-inspect-1.0 nawqsr >/dev/null && echo "install: gst-inspect-1.0 nawqsr finds the element" >&2

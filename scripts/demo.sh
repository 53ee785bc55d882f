#!/usr/bin/env bash
# Installs what is missing, builds crdtsync and runs the quick start.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -d build ] || meson setup build --buildtype=release -Dtests=false
meson compile -C build quickstart
./build/examples/quickstart

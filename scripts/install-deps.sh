#!/usr/bin/env bash
# Installs what crdtsync needs on Debian 12 (run as root, or with sudo).
# Installs only what is missing; safe to run again.
set -euo pipefail
packages=(g++ clang libclang-rt-14-dev meson ninja-build pkg-config python3
          libboost-dev nlohmann-json3-dev doctest-dev liblmdb-dev
          libcli11-dev libspdlog-dev cmake libnats-dev nats-server)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get update
  "${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi

#!/usr/bin/env bash
# tests/consumers/warnings.sh SOURCE_ROOT
#
# A user who builds with -Werror and strict warnings must be able to include
# crdtsync. Compiles, with g++ and with clang++ (-fsyntax-only: templates are
# instantiated, nothing is generated):
#   all_headers.cpp       every public header in one unit
#   consumer.cpp          an LMDB replica: table, write, read
#   examples/sync_pipe.cpp  sync sessions, the wire codec, the memory store
# under -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
# -Werror. Prints one line per compiler and file, and a summary line in
# doctest's format (scripts/count-tests.py reads it).
set -uo pipefail
src=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
flags=(-std=c++20 -fsyntax-only -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Werror
       -I "$src/include" -I "$src/backends/memory" -I "$src/backends/lmdb" -I "$src/transports/websocket")
passed=0 failed=0
for cxx in g++ clang++; do
  if ! command -v "$cxx" >/dev/null; then
    echo "FAILED $cxx: not installed (scripts/install-deps.sh installs it)"
    failed=$((failed + 1))
    continue
  fi
  for f in "$here/all_headers.cpp" "$here/consumer.cpp" "$src/examples/sync_pipe.cpp"; do
    if out=$("$cxx" "${flags[@]}" "$f" 2>&1); then
      echo "ok     $cxx $(basename "$f")"
      passed=$((passed + 1))
    else
      echo "FAILED $cxx $(basename "$f")"
      echo "$out" | grep -E "error|warning" | head -20
      failed=$((failed + 1))
    fi
  done
done
echo "[doctest] test cases: $((passed + failed)) | $passed passed | $failed failed"
[ "$failed" -eq 0 ]

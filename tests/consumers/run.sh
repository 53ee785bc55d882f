#!/usr/bin/env bash
# tests/consumers/run.sh SOURCE_ROOT
#
# Embeds crdtsync the ways docs/embedding.md describes, each from scratch in a
# temporary directory, and runs the program each builds (consumer.cpp, an
# LMDB replica with one row):
#   install     meson install into a prefix: headers, crdtsync*.pc, the CMake package
#   pkg-config  g++ $(pkg-config --cflags --libs crdtsync-lmdb)
#   store-laws  docs/store.md's program running the installed store laws
#               (<crdtsync/testing/store_laws.hpp>) over a user's store
#   cmake       find_package(crdtsync) and crdtsync::lmdb
#   cmake-moved the same against a copy of the installed prefix somewhere else,
#               with the original renamed away (the CMake package is relocatable)
#   pkg-config-moved
#               the pkg-config way against that copy (the .pc files are relocatable)
#   subproject  a meson project with crdtsync in subprojects/ and a wrap file with
#               [provide]: dependency('crdtsync-lmdb') without a fallback, and none
#               of crdtsync's tests, examples or tools configured
#   plain       the README's g++ command with -I for each include root
# Prints one line per way and a summary line in doctest's format (which
# scripts/count-tests.py reads).
set -uo pipefail
src=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
expected="crdtsync 0.1: 1 row, body 'hello'"

way() { # name, command...
  local name=$1; shift
  local log="$work/$name.log"
  if "$@" >"$log" 2>&1; then
    echo "ok     $name"
    passed=$((passed + 1))
  else
    echo "FAILED $name"
    tail -30 "$log"
    failed=$((failed + 1))
  fi
}

runs=0
check_output() { # program
  local out
  runs=$((runs + 1))
  out=$("$1" "$work/run-$runs.mdb") || return 1
  [ "$out" = "$expected" ] || { echo "printed: $out"; echo "expected: $expected"; return 1; }
}

prefix="$work/prefix"
install() {
  meson setup "$work/build" "$src" --prefix="$prefix" -Dtests=false -Dbench=false -Dexamples=false \
    -Dtool=disabled && meson install -C "$work/build" || return 1
  for f in include/crdtsync/replica.hpp include/crdtsync/backends/lmdb.hpp include/crdtsync/backends/memory.hpp \
           include/crdtsync/testing/store_laws.hpp include/crdtsync/testing/faulty_store.hpp \
           share/pkgconfig/crdtsync.pc share/pkgconfig/crdtsync-lmdb.pc share/cmake/crdtsync/crdtsyncConfig.cmake; do
    [ -f "$prefix/$f" ] || { echo "not installed: $f"; return 1; }
  done
}
way install install

with_pkg_config() {
  local pc=(env PKG_CONFIG_PATH="$prefix/share/pkgconfig" pkg-config)
  # shellcheck disable=SC2046
  g++ -O0 $("${pc[@]}" --cflags crdtsync-lmdb) "$here/consumer.cpp" -o "$work/pc-consumer" \
    $("${pc[@]}" --libs crdtsync-lmdb) && check_output "$work/pc-consumer"
}
way pkg-config with_pkg_config

# docs/store.md, "Running the laws on your store": its program, verbatim, with
# examples/custom_store.hpp as the user's store, built with the command the
# page gives against the installed tree, must run all 16 laws and pass.
with_store_laws() {
  local d="$work/store-laws"
  mkdir -p "$d"
  sed -n '/<!-- store laws begin -->/,/<!-- store laws end -->/p' "$src/docs/store.md" | sed '1,2d;$d' | sed '$d' \
    >"$d/my_store_laws.cpp"
  grep -q CRDTSYNC_STORE_LAWS "$d/my_store_laws.cpp" || { echo "no program in docs/store.md"; return 1; }
  cp "$src/examples/custom_store.hpp" "$d/"
  printf '#pragma once\n#include "custom_store.hpp"\nusing my_store = example::custom_store;\n' >"$d/my_store.hpp"
  local out
  # shellcheck disable=SC2046
  (cd "$d" && g++ $(PKG_CONFIG_PATH="$prefix/share/pkgconfig" pkg-config --cflags crdtsync) -O1 my_store_laws.cpp \
    -o my_store_laws) || return 1
  out=$("$d/my_store_laws") || { echo "$out"; return 1; }
  echo "$out"
  printf '%s\n' "$out" | grep -qE 'test cases: +16 \| +16 passed \| +0 failed' || { echo "expected 16 laws passed"; return 1; }
}
way store-laws with_store_laws

with_cmake() {
  cmake -S "$here/cmake" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Debug &&
    cmake --build "$work/cmake-build" && check_output "$work/cmake-build/consumer"
}
way cmake with_cmake

# A package built with one prefix and unpacked under another: the installed
# tree is copied elsewhere (a different depth) and the original renamed away
# while the consumer is configured and built, so any absolute path to the
# install prefix baked into the CMake package or the .pc files fails.
moved="$work/moved/to/elsewhere"
in_moved_tree() { # command...: runs it with the prefix copied to $moved and the original away
  rm -rf "$work/moved" && mkdir -p "$(dirname "$moved")" && cp -a "$prefix" "$moved" || return 1
  mv "$prefix" "$prefix.away" || return 1
  "$@"
  local rc=$?
  mv "$prefix.away" "$prefix" || return 1
  return $rc
}
no_stale_paths() { # dir: no file under it names the original prefix
  if grep -rlF "$prefix/" "$1"; then
    echo "the files above name the original prefix $prefix"
    return 1
  fi
}

with_cmake_moved() {
  local b="$work/cmake-moved-build"
  cmake -S "$here/cmake" -B "$b" -DCMAKE_PREFIX_PATH="$moved" -DCMAKE_BUILD_TYPE=Debug || return 1
  grep -qxF "crdtsync_DIR:PATH=$moved/share/cmake/crdtsync" "$b/CMakeCache.txt" ||
    { echo "find_package(crdtsync) did not use $moved"; grep crdtsync_DIR "$b/CMakeCache.txt"; return 1; }
  no_stale_paths "$b" && cmake --build "$b" && check_output "$b/consumer"
}
way cmake-moved in_moved_tree with_cmake_moved

with_pkg_config_moved() {
  local pc=(env PKG_CONFIG_PATH="$moved/share/pkgconfig" pkg-config) cflags libs
  cflags=$("${pc[@]}" --cflags crdtsync-lmdb) && libs=$("${pc[@]}" --libs crdtsync-lmdb) || return 1
  echo "cflags: $cflags"
  echo "libs: $libs"
  case "$cflags $libs" in *"$prefix/"*) echo "pkg-config names the original prefix $prefix"; return 1 ;; esac
  # shellcheck disable=SC2086
  g++ -O0 $cflags "$here/consumer.cpp" -o "$work/pc-moved-consumer" $libs && check_output "$work/pc-moved-consumer"
}
way pkg-config-moved in_moved_tree with_pkg_config_moved

with_subproject() {
  local p="$work/parent"
  mkdir -p "$p/subprojects"
  ln -s "$src" "$p/subprojects/crdtsync"
  cat >"$p/subprojects/crdtsync.wrap" <<'WRAP'
[wrap-file]
directory = crdtsync

[provide]
dependency_names = crdtsync, crdtsync-lmdb
WRAP
  cp "$here/consumer.cpp" "$p/"
  cat >"$p/meson.build" <<'MESON'
project('parent', 'cpp', default_options : ['cpp_std=c++20', 'buildtype=debug'])
executable('consumer', 'consumer.cpp', dependencies : dependency('crdtsync-lmdb'))
MESON
  meson setup "$p/build" "$p" >"$work/subproject-setup.log" 2>&1 || { cat "$work/subproject-setup.log"; return 1; }
  cat "$work/subproject-setup.log"
  grep -q "Executing subproject crdtsync" "$work/subproject-setup.log" ||
    { echo "dependency('crdtsync-lmdb') did not come from the subproject"; return 1; }
  # A subproject builds nothing of its own: no doctest, no tests, no tool.
  if grep -q -E "doctest|test_replica|crdtsync_bench" "$p/build/build.ninja"; then
    echo "the parent build configured crdtsync's tests or benchmarks"
    return 1
  fi
  meson compile -C "$p/build" && check_output "$p/build/consumer"
}
way subproject with_subproject

with_plain_gxx() {
  (cd "$src" && g++ -std=c++20 -O0 -I include -I backends/memory -I backends/lmdb "$here/consumer.cpp" \
    -llmdb -o "$work/plain-consumer") && check_output "$work/plain-consumer"
}
way plain with_plain_gxx

echo "[doctest] test cases: $((passed + failed)) | $passed passed | $failed failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# Runs every libFuzzer target for a bounded time.
#
#   tests/fuzz/run.sh <seconds> [build-dir]
#
# Configures (once) a separate clang build with -Dfuzz=true in build-dir
# (default: build-fuzz at the project root), builds the targets, and runs each
# for <seconds>, all at the same time, on a scratch copy of its seed corpus
# (tests/fuzz/corpus/<name>, so the checked-in corpus never changes). Prints
# one line per target:
#   fuzz <target>: ok <N> executions in <S>s
#   fuzz <target>: FAILED ...
# and exits non-zero if any target failed to build or found a crash; the
# crashing input is kept in <build-dir>/fuzz-artifacts/.
set -uo pipefail

seconds=${1:-20}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${2:-build-fuzz}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
targets=(fuzz_change_sets fuzz_messages fuzz_snapshot_stream fuzz_session fuzz_differential)

fail_all() { # reason
  for t in "${targets[@]}"; do echo "fuzz $t: FAILED ($1)"; done
  exit 1
}

if [ ! -f "$build/build.ninja" ]; then
  rm -rf "$build"
  setup_log=$(mktemp)
  CXX=${FUZZ_CXX:-clang++} meson setup "$build" "$root" -Dfuzz=true -Dtests=false -Dbench=false \
    -Dlmdb=disabled --buildtype=debugoptimized >"$setup_log" 2>&1 ||
    { cat "$setup_log"; rm -f "$setup_log"; fail_all "meson setup"; }
  rm -f "$setup_log"
fi
ninja -C "$build" -j2 "${targets[@]/#/tests/fuzz/}" >"$build/fuzz-build.log" 2>&1 ||
  { tail -50 "$build/fuzz-build.log"; fail_all "build, see $build/fuzz-build.log"; }

artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}
# The targets run at the same time, one core each (libFuzzer runs one
# process); their lines are printed in target order once all have ended.
status=0
declare -A work pid
for t in "${targets[@]}"; do
  work[$t]=$(mktemp -d)
  cp "$here/corpus/${t#fuzz_}/"* "${work[$t]}/"
  "$build/tests/fuzz/$t" "${work[$t]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/$t-" >"${work[$t]}.log" 2>&1 &
  pid[$t]=$!
done
for t in "${targets[@]}"; do
  wait "${pid[$t]}"
  rc=$?
  log="${work[$t]}.log"
  execs=$(awk '/^stat::number_of_executed_units:/ { print $2 }' "$log")
  if [ "$rc" -eq 0 ]; then
    echo "fuzz $t: ok ${execs:-0} executions in ${seconds}s"
  else
    echo "fuzz $t: FAILED (exit $rc after ${execs:-?} executions; input kept in $artifacts)"
    tail -60 "$log"
    status=1
  fi
  rm -rf "${work[$t]}" "$log"
done
exit $status

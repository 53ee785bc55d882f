#!/usr/bin/env bash
# The crdtsync demo: a sync server and three replicas (alice, bob, carol),
# each a separate `crdtsync` process with its own LMDB folder, on loopback.
# The replicas edit the same rows while the server is down, the server comes
# back, and all three converge. Installs what is missing and builds the tool
# first (skipped when $CRDTSYNC names a built crdtsync binary). Exits 0 only
# when the three replicas ended identical and every process stopped cleanly;
# leaves no process and no file behind.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${CRDTSYNC:-}" ]; then
  bash scripts/install-deps.sh
  [ -d build ] || meson setup build --buildtype=release -Dtests=false -Dbench=false >/dev/null
  meson compile -C build crdtsync >/dev/null
  CRDTSYNC=$PWD/build/tools/crdtsync/crdtsync
fi
start=$SECONDS

work=$(mktemp -d "${TMPDIR:-/tmp}/crdtsync-demo.XXXXXX")
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cs() { "$CRDTSYNC" --log-level warn "$@"; }
say() { printf '\n== %s\n' "$*"; }
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="ws://127.0.0.1:$port/sync/ws"
replicas=(alice bob carol)

server_pid=
start_server() {
  "$CRDTSYNC" serve --data "$work/server" --listen "127.0.0.1:$port" >>"$work/server.out" 2>>"$work/server.log" &
  server_pid=$!
  pids+=("$server_pid")
  for _ in $(seq 100); do
    grep -q "listening on" "$work/server.out" 2>/dev/null && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "the server did not start:" >&2; cat "$work/server.log" >&2; exit 1
}
stop_server() {
  kill -TERM "$server_pid"
  local rc=0
  wait "$server_pid" || rc=$?
  [ "$rc" -eq 0 ] || { echo "the server exited with $rc" >&2; exit 1; }
  local p rest=()
  for p in "${pids[@]}"; do [ "$p" = "$server_pid" ] || rest+=("$p"); done
  pids=("${rest[@]}")
  : >"$work/server.out"
}
# Waits until the three replicas' tables are identical and hold `$1` rows.
wait_converged() {
  local want=$1 a b c
  for _ in $(seq 200); do
    a=$(cs dump --data "$work/alice" --format json 2>/dev/null || true)
    b=$(cs dump --data "$work/bob" --format json 2>/dev/null || true)
    c=$(cs dump --data "$work/carol" --format json 2>/dev/null || true)
    if [ -n "$a" ] && [ "$a" = "$b" ] && [ "$b" = "$c" ] &&
       [ "$(printf '%s' "$a" | python3 -c 'import json, sys; print(sum(len(t["rows"]) for t in json.load(sys.stdin).values()))')" = "$want" ]; then
      return 0
    fi
    sleep 0.1
  done
  echo "the replicas did not converge" >&2; exit 1
}

say "a sync server on $url, three replicas syncing with it (sync --watch)"
start_server
for r in "${replicas[@]}"; do
  "$CRDTSYNC" sync --data "$work/$r" --server "$url" --db tasks --watch --retry-max 1 2>"$work/$r.log" &
  pids+=("$!")
done
echo "crdtsync serve --data server --listen 127.0.0.1:$port"
for r in "${replicas[@]}"; do echo "crdtsync sync --data $r --server $url --db tasks --watch"; done

say "alice creates a table and three tasks; the others receive them live"
cs exec --data "$work/alice" "CREATE TABLE tasks (id INTEGER PRIMARY KEY, title TEXT NULL, done BOOLEAN NULL);
  INSERT INTO tasks VALUES (1, 'buy milk', FALSE), (2, 'walk the dog', FALSE), (3, 'call mom', FALSE)" >/dev/null
wait_converged 3
cs dump --data "$work/carol"

say "the server goes down; each replica keeps writing (crdtsync exec, a separate process)"
stop_server
run() { echo "$1: $2"; cs exec --data "$work/$1" "$2" >/dev/null; }
run alice "UPDATE tasks SET title = 'buy oat milk' WHERE id = 1"
run bob   "UPDATE tasks SET done = TRUE WHERE id = 1"
run alice "UPDATE tasks SET title = 'walk the dog at 6' WHERE id = 2"
run carol "UPDATE tasks SET title = 'walk both dogs' WHERE id = 2"
run bob   "DELETE FROM tasks WHERE id = 3"
run carol "UPDATE tasks SET title = 'call mom today' WHERE id = 3"
run carol "ALTER TABLE tasks ADD COLUMN due TEXT NULL; UPDATE tasks SET due = 'friday' WHERE id = 2"
run alice "INSERT INTO tasks (id, title, done) VALUES (4, 'water the plants', FALSE)"

say "the server comes back; the replicas reconnect and exchange what they wrote"
start_server
wait_converged 3
for r in "${replicas[@]}"; do
  echo "-- $r"
  cs dump --data "$work/$r"
done

say "conflicts the merges resolved (same cell written on two replicas: the later write wins)"
for r in "${replicas[@]}"; do
  echo "-- $r"
  cs conflicts --data "$work/$r"
done
echo "(task 1: alice's title and bob's done are different columns, so both survive;"
echo " task 3: bob's delete beats carol's update, which does not bring a row back;"
echo " carol's new column 'due' reached every replica)"

say "checking: dump --format json is byte for byte the same on all three"
cs dump --data "$work/alice" --format json >"$work/alice.json"
for r in bob carol; do
  cs dump --data "$work/$r" --format json >"$work/$r.json"
  cmp -s "$work/alice.json" "$work/$r.json" || { echo "$r differs from alice" >&2; exit 1; }
done
echo "alice, bob and carol are identical"

say "stopping everything"
for p in "${pids[@]}"; do
  kill -TERM "$p" 2>/dev/null || true
done
for p in "${pids[@]}"; do
  rc=0
  wait "$p" || rc=$?
  [ "$rc" -eq 0 ] || { echo "a process exited with $rc" >&2; exit 1; }
done
pids=()
echo "all processes exited cleanly; the demo took $((SECONDS - start)) s"

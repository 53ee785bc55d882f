#!/usr/bin/env bash
# The crdtsync cluster demo (docs/cluster.md): three nats-server processes as
# one JetStream cluster, three `crdtsync serve --cluster` nodes sharing one
# database through it, and three replicas (alice, bob, carol), each a
# `crdtsync sync --watch` connected to a different node, on loopback. The
# replicas write concurrently (`crdtsync exec`); bob's node is killed with
# SIGKILL in the middle and restarted; at the end every replica, clients
# and nodes, must hold every write and be identical. Installs what is
# missing and builds the tool first (skipped when $CRDTSYNC names a built
# crdtsync binary). Exits 0 only when the six replicas ended identical and
# complete and every process stopped cleanly; leaves no process and no file
# behind.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${CRDTSYNC:-}" ]; then
  bash scripts/install-deps.sh
  [ -d build ] || meson setup build --buildtype=release -Dtests=false -Dbench=false >/dev/null
  meson compile -C build crdtsync >/dev/null
  CRDTSYNC=$PWD/build/tools/crdtsync/crdtsync
fi
command -v nats-server >/dev/null || { echo "nats-server is not installed (apt-get install nats-server)" >&2; exit 1; }
start=$SECONDS

work=$(mktemp -d "${TMPDIR:-/tmp}/crdtsync-cluster-demo.XXXXXX")
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cs() { "$CRDTSYNC" --log-level warn "$@"; }
say() { printf '\n== %s\n' "$*"; }
forget() { # drops a pid that was waited for
  local p rest=()
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || rest+=("$p"); done
  pids=("${rest[@]}")
}
# Nine free loopback ports (NATS clients, NATS routes, the nodes), below the
# kernel's ephemeral range: no other process's port 0 or outgoing connection
# takes one between this pick and the bind, nor node 2's while it is down.
read -r np1 np2 np3 cp1 cp2 cp3 sp1 sp2 sp3 < <(python3 -c '
import random, socket
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except OSError:
    low = 32768
found = []
while len(found) < 9:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", random.randrange(10000, low) if low > 11000 else 0))
    except OSError:
        continue
    if s.getsockname()[1] not in found:
        found.append(s.getsockname()[1])
    s.close()
print(*found)')
nats_ports=("$np1" "$np2" "$np3")
route_ports=("$cp1" "$cp2" "$cp3")
routes=nats://127.0.0.1:$cp1,nats://127.0.0.1:$cp2,nats://127.0.0.1:$cp3
cluster=nats://127.0.0.1:$np1,nats://127.0.0.1:$np2,nats://127.0.0.1:$np3
replicas=(alice bob carol)
node_of=([0]=1 [1]=2 [2]=3) # alice on node 1, bob on node 2, carol on node 3

say "three NATS servers, one JetStream cluster (client ports $np1 $np2 $np3)"
for i in 1 2 3; do
  nats-server -js -a 127.0.0.1 -p "${nats_ports[i-1]}" -sd "$work/nats$i" --server_name "nats$i" \
    --cluster_name crdtsync-demo --cluster "nats://127.0.0.1:${route_ports[i-1]}" --routes "$routes" \
    >"$work/nats$i.log" 2>&1 &
  pids+=("$!")
  echo "nats-server -js -a 127.0.0.1 -p ${nats_ports[i-1]} -sd nats$i --server_name nats$i --cluster_name crdtsync-demo --cluster nats://127.0.0.1:${route_ports[i-1]} --routes $routes"
done
# Ready when each server knows the JetStream metadata leader.
for i in 1 2 3; do
  for _ in $(seq 300); do
    grep -q "metadata leader" "$work/nats$i.log" && break
    sleep 0.05
  done
  grep -q "metadata leader" "$work/nats$i.log" || { echo "nats$i did not join the cluster:" >&2; tail -20 "$work/nats$i.log" >&2; exit 1; }
done

node_port=([1]="$sp1" [2]="$sp2" [3]="$sp3")
node_pid=()
node_url=()
start_node() { # start_node I
  local i=$1 port=${node_port[$1]} p
  : >"$work/node$i.out"
  "$CRDTSYNC" serve --data "$work/node$i" --listen "127.0.0.1:$port" --cluster "$cluster" --cluster-replicas 3 \
    >>"$work/node$i.out" 2>>"$work/node$i.log" &
  p=$!
  pids+=("$p")
  node_pid[i]=$p
  for _ in $(seq 200); do
    if grep -q "listening on" "$work/node$i.out"; then
      node_url[i]=$(sed -n 's/^listening on //p' "$work/node$i.out")
      return 0
    fi
    kill -0 "$p" 2>/dev/null || break
    sleep 0.05
  done
  echo "node $i did not start:" >&2; cat "$work/node$i.log" >&2; exit 1
}

say "three crdtsync serve nodes, each a full replica of every database"
for i in 1 2 3; do
  start_node "$i"
  echo "crdtsync serve --data node$i --listen 127.0.0.1:${node_port[i]} --cluster $cluster --cluster-replicas 3"
done

say "alice on node 1, bob on node 2, carol on node 3 (sync --watch)"
for k in 0 1 2; do
  r=${replicas[k]} n=${node_of[k]}
  "$CRDTSYNC" sync --data "$work/$r" --server "${node_url[n]}" --db notes --watch --retry-max 1 2>"$work/$r.log" &
  pids+=("$!")
  echo "crdtsync sync --data $r --server ${node_url[n]} --db notes --watch"
done

# Waits until every replica in $all (clients and the nodes' replicas of
# `notes`) has `$1` rows in all and the same dump; $2 seconds at most.
all=("$work/alice" "$work/bob" "$work/carol" "$work/node1/notes" "$work/node2/notes" "$work/node3/notes")
rows() { python3 -c 'import json, sys; print(sum(len(t["rows"]) for t in json.load(sys.stdin).values()))'; }
wait_converged() {
  local want=$1 deadline=$((SECONDS + $2)) first d same n
  while [ "$SECONDS" -lt "$deadline" ]; do
    first=$(cs dump --data "${all[0]}" --format json 2>/dev/null || true)
    same=1
    for d in "${all[@]:1}"; do
      [ "$(cs dump --data "$d" --format json 2>/dev/null || true)" = "$first" ] || { same=0; break; }
    done
    if [ "$same" = 1 ] && [ -n "$first" ]; then
      n=$(printf '%s' "$first" | rows)
      [ "$n" = "$want" ] && return 0
    fi
    sleep 0.2
  done
  echo "the replicas did not converge to $want rows in $2 s:" >&2
  for d in "${all[@]}"; do
    printf '%s: %s rows\n' "${d#"$work"/}" "$(cs dump --data "$d" --format json 2>/dev/null | rows || echo '?')" >&2
  done
  for i in 1 2 3; do echo "-- node $i log" >&2; tail -15 "$work/node$i.log" >&2; done
  exit 1
}

say "alice creates two tables; every replica receives them through the cluster"
cs exec --data "$work/alice" "CREATE TABLE board (id INTEGER PRIMARY KEY, text TEXT NULL, author TEXT NULL);
  CREATE TABLE log (id INTEGER PRIMARY KEY, author TEXT NULL, body TEXT NULL);
  INSERT INTO board VALUES (1, 'first', 'alice'), (2, 'second', 'alice'), (3, 'third', 'alice')" >/dev/null
wait_converged 3 30
echo "3 rows on alice, bob, carol and the three nodes"

writes=30
say "alice, bob and carol each write $writes times at once (a new log row, and one of the 3 board rows overwritten)"
writer_pids=()
for k in 0 1 2; do
  r=${replicas[k]}
  (
    for i in $(seq "$writes"); do
      cs exec --data "$work/$r" "INSERT INTO log VALUES ($(((k + 1) * 1000 + i)), '$r', 'note $i');
        UPDATE board SET text = '$r $i', author = '$r' WHERE id = $((i % 3 + 1))" >/dev/null
      sleep 0.05
    done
  ) &
  writer_pids+=("$!")
  pids+=("$!")
done

sleep 1
say "SIGKILL to node 2 (bob's) while they write"
kill -KILL "${node_pid[2]}"
wait "${node_pid[2]}" 2>/dev/null || true
forget "${node_pid[2]}"
echo "node 2 (pid ${node_pid[2]}) killed; bob keeps writing to his replica and retries the connection"
sleep 1.5
start_node 2
echo "node 2 restarted on the same port and data; its log says where it continues:"
for _ in $(seq 100); do grep -q "cluster: database notes on stream" "$work/node2.log" && break; sleep 0.05; done
grep "cluster: database notes on stream" "$work/node2.log" | tail -1 | sed 's/^[0-9-]* [0-9:.]* [a-z]* /  /'

for p in "${writer_pids[@]}"; do
  rc=0
  wait "$p" || rc=$?
  forget "$p"
  [ "$rc" -eq 0 ] || { echo "a writer failed ($rc)" >&2; exit 1; }
done
want=$((3 + 3 * writes))
echo "the writers are done: $((3 * writes)) writes; waiting for $want rows everywhere"
wait_converged "$want" 60

say "the board (3 rows every writer overwrote), as each client sees it"
for k in 0 1 2; do
  echo "-- ${replicas[k]} (node ${node_of[k]})"
  cs dump --data "$work/${replicas[k]}" --table board
done
echo "(each column merges on its own, the later write wins; an UPDATE that leaves a column as it"
echo " was does not write it, so a row's text and author may come from different writers)"

say "what each node did (GET /status, /metrics)"
for i in 1 2 3; do
  base=${node_url[i]%/sync/ws}
  base=http${base#ws}
  python3 - "$base" "$i" <<'EOF'
import json, sys, urllib.request
base, i = sys.argv[1], sys.argv[2]
db = next(d for d in json.load(urllib.request.urlopen(base + "/status"))["cluster"]["databases"] if d["id"] == "notes")
m = {}
for line in urllib.request.urlopen(base + "/metrics").read().decode().splitlines():
    if line.startswith("crdtsync_cluster_") and 'database="notes"' in line:
        m[line.split("{")[0]] = int(line.split()[-1])
print(f"node {i}: {db['state']}, stream position {db['streamPosition']}, caught up {str(db['caughtUp']).lower()}, "
      f"published {m['crdtsync_cluster_published_messages_total']} message(s), "
      f"local-only acks {m['crdtsync_cluster_local_acks_total']}, publish errors {m['crdtsync_cluster_publish_errors_total']}")
EOF
done

say "checking: dump --format json is byte for byte the same on all six replicas"
cs dump --data "${all[0]}" --format json >"$work/first.json"
for d in "${all[@]}"; do
  cs dump --data "$d" --format json >"$work/this.json"
  cmp -s "$work/first.json" "$work/this.json" || { echo "${d#"$work"/} differs from alice" >&2; exit 1; }
  printf '%-12s %s rows  sha256 %s\n' "${d#"$work"/}" "$(rows <"$work/this.json")" "$(sha256sum <"$work/this.json" | cut -c1-16)"
done
echo "alice, bob, carol and the three nodes are identical; no write was lost"

say "stopping everything (clients, then nodes, then NATS)"
stop_all() { # stop_all SIGNAL PID...: each must exit 0
  local sig=$1 p rc
  shift
  for p in "$@"; do kill "-$sig" "$p" 2>/dev/null || true; done
  for p in "$@"; do
    rc=0
    wait "$p" || rc=$?
    forget "$p"
    [ "$rc" -eq 0 ] || { echo "process $p exited with $rc" >&2; exit 1; }
  done
}
nats_pids=("${pids[@]:0:3}")
rest=()
for p in "${pids[@]}"; do
  case " ${nats_pids[*]} ${node_pid[*]} " in *" $p "*) ;; *) rest+=("$p") ;; esac
done
stop_all TERM "${rest[@]}"
stop_all TERM "${node_pid[@]}"
stop_all INT "${nats_pids[@]}" # nats-server exits 0 on SIGINT (1 on SIGTERM)
echo "all processes exited cleanly; the demo took $((SECONDS - start)) s"

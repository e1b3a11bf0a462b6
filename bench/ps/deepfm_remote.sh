#!/usr/bin/env bash
# DeepFM end to end with embedded PS shards vs remote `shardrec ps` shard servers on this machine,
# each with prefetching (trainer.prefetch_depth=2) and without (0), on the same generated data.
# Prints one markdown table row per run: samples/s, step samples/s, where the step waits (batch and
# embeddings not ready; re-pulls of rows pushed since they were prefetched; pushes), validation
# AUC, and the CPU time of the trainer and of the servers.
#
#   bench/ps/deepfm_remote.sh [ROWS] [VOCAB] [SETUPS]
#
# Defaults: 300,000 generated rows, 10,000 ids per field (the config's), SETUPS "0 1 2" (0: the
# embedded PS, as configs/deepfm.pbtxt has it: 4 shards in the trainer, RocksDB-backed, no push
# log; N > 0: N `shardrec ps` processes on 127.0.0.1, fresh RocksDB folders + push log each run).
# 1 epoch per run. The servers and the trainer share this machine's cores: on 2 cores the remote
# runs measure the service's CPU cost as much as its latency. Needs a built tree
# (scripts/build.sh --target shardrec). WORKDIR (default build/bench/ps-deepfm-remote) keeps the
# data, each run's output folder, trainer log and server logs. EXTRA_SETS adds --set overrides to
# every trainer and server (e.g. EXTRA_SETS="ps.consistency=ASYNC trainer.epochs=2").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="${SHARDREC_BIN:-$ROOT/build/shardrec}"
CONFIG="$ROOT/configs/deepfm.pbtxt"
ROWS="${1:-300000}" VOCAB="${2:-10000}" SETUPS="${3:-0 1 2}"
WORK="${WORKDIR:-$ROOT/build/bench/ps-deepfm-remote}"
[[ -x "$BIN" ]] || { echo "deepfm_remote.sh: no $BIN (scripts/build.sh --target shardrec)" >&2; exit 1; }
mkdir -p "$WORK"

SERVER_PIDS=()
stop_servers() {  # SIGTERM (graceful: flushes its store), then wait; SIGKILL after 30 s
  local pid
  for pid in "${SERVER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${SERVER_PIDS[@]}"; do
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  SERVER_PIDS=()
}
TRAINER_PID=""
cleanup() {
  if [[ -n "$TRAINER_PID" ]]; then  # the trainer is the child of /usr/bin/time (which would leave it running)
    pkill -TERM -P "$TRAINER_PID" 2>/dev/null || true
    wait "$TRAINER_PID" 2>/dev/null || true
  fi
  stop_servers
}
trap cleanup EXIT
trap 'exit 130' INT TERM  # runs the EXIT trap

cpu_of() {  # CPU seconds (user + system) of a live process, from /proc/PID/stat
  awk -v tck="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.1f", ($12 + $13) / tck }' "/proc/$1/stat"
}

# Starts N servers for a fresh run; sets ADDRESSES ("a,b") and SERVER_PIDS.
start_servers() {  # n, folder
  local n="$1" dir="$2" i pid out addr
  local addrs=()
  rm -rf "$dir" && mkdir -p "$dir"
  for ((i = 0; i < n; i++)); do
    out="$dir/server-$i.out"
    "$BIN" ps --config "$CONFIG" "${extra_sets[@]}" --shard-id "$i" --num-shards "$n" --port 0 --data-dir "$dir/shard-$i" \
      > "$out" 2> "$dir/server-$i.log" &
    pid=$!
    SERVER_PIDS+=("$pid")
    addr=""
    for _ in $(seq 600); do  # up to 60 s
      addr="$(sed -n 's/^listening on //p' "$out" | head -n1)"
      [[ -n "$addr" ]] && break
      kill -0 "$pid" 2>/dev/null || { echo "shard $i exited before listening:" >&2; cat "$dir/server-$i.log" >&2; exit 1; }
      sleep 0.1
    done
    [[ -n "$addr" ]] || { echo "shard $i did not print 'listening on' in 60 s" >&2; exit 1; }
    addrs+=("$addr")
  done
  ADDRESSES="$(IFS=,; echo "${addrs[*]}")"
}

common=(--set "data.synthetic.rows=$ROWS" --set "data.synthetic.vocab_size=$VOCAB" --set "data.synthetic.dir=$WORK/data"
        --set trainer.epochs=1 --set trainer.progress=LINES --set trainer.log_every=50)
extra_sets=() kvs=()
read -r -a kvs <<< "${EXTRA_SETS:-}"  # split on blanks, no globbing
for kv in "${kvs[@]}"; do extra_sets+=(--set "$kv"); done
common+=("${extra_sets[@]}")

run() {  # shards (0: embedded), prefetch depth
  local n="$1" depth="$2" name setup extra=() server_cpu=0 pid
  if ((n == 0)); then
    name="embedded-p$depth" setup="embedded (4 shards in the trainer)"
  else
    name="remote$n-p$depth" setup="$n remote shard"
    if ((n > 1)); then setup+="s"; fi
    start_servers "$n" "$WORK/$name-ps"
    extra=(--set "ps.addresses=[$ADDRESSES]")
  fi
  rm -rf "${WORK:?}/$name"
  # In the background, so that a signal to this script runs the trap at once (not after training).
  /usr/bin/time -f "%U %S" -o "$WORK/$name.time" \
    "$BIN" train "$CONFIG" --output-dir "$WORK/$name" "${common[@]}" --set "trainer.prefetch_depth=$depth" "${extra[@]}" \
    > "$WORK/$name.log" 2>&1 &
  TRAINER_PID=$!
  wait "$TRAINER_PID" || { echo "run $name failed; see $WORK/$name.log" >&2; tail -n 5 "$WORK/$name.log" >&2; exit 1; }
  TRAINER_PID=""
  if ((n > 0)); then
    for pid in "${SERVER_PIDS[@]}"; do server_cpu="$(awk -v a="$server_cpu" -v b="$(cpu_of "$pid")" 'BEGIN { print a + b }')"; done
    stop_servers
  fi
  python3 - "$WORK/$name/metrics.json" "$setup" "$depth" "$WORK/$name.time" "$n" "$server_cpu" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
setup, depth, n = sys.argv[2], sys.argv[3], int(sys.argv[5])
t = m["throughput"]
ms = m["epochs"][-1].get("step_ms", {})
user, sys_ = (float(x) for x in open(sys.argv[4]).read().split()[-2:])
server = f"{float(sys.argv[6]):.1f}" if n else "-"
print(f"| {setup} | {depth} | {t['train_samples_per_sec']:,.0f} | {t['step_samples_per_sec']:,.0f} | "
      f"{ms.get('wait', float('nan')):.1f} | {ms.get('refresh', float('nan')):.1f} | {ms.get('push', float('nan')):.1f} | "
      f"{m['validation'].get('auc', float('nan')):.4f} | {user + sys_:.1f} | {server} |")
PY
}

# The data, generated once before the runs (so that no run's CPU time includes it): the same files
# the trainer would write, with the stamp it checks to reuse them (src/train/data_sources.cc; if
# the stamp ever differs, the first run regenerates them, which changes nothing but its CPU time).
stamp="ctr rows=$ROWS seed=1 vocab=$VOCAB"
if [[ "$(head -n1 "$WORK/data/GENERATED" 2>/dev/null)" != "$stamp" ]]; then
  rm -rf "$WORK/data"
  "$BIN" gen-data ctr --rows "$ROWS" --seed 1 --vocab "$VOCAB" --out "$WORK/data" > /dev/null
  echo "$stamp" > "$WORK/data/GENERATED"
fi

echo "DeepFM (configs/deepfm.pbtxt), $ROWS generated rows, $VOCAB ids per field, batch 2048, 1 epoch; $(nproc) cores"
echo "shared by the trainer and the servers${EXTRA_SETS:+; --set $EXTRA_SETS}; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| setup | prefetch depth | samples/s | step samples/s | wait ms/step | refresh ms/step | push ms/step | validation AUC | trainer CPU s | servers CPU s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for n in $SETUPS; do
  for depth in 2 0; do run "$n" "$depth"; done
done
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

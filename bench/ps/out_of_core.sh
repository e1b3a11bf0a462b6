#!/usr/bin/env bash
# Out-of-core embedding tables: DeepFM trained once with the PS row cache far smaller than the
# tables (rows evicted to RocksDB and read back) and once with everything cached, on the same
# generated data. Prints samples/s, PS rows, cache hit rate and evictions of both runs.
#
#   bench/ps/out_of_core.sh [ROWS] [VOCAB] [SMALL_CACHE_BYTES]
#
# Defaults: 2,000,000 generated rows, 1,000,000 ids per field (Zipf-skewed), 64 MiB cache for the
# small run. Needs a built tree (scripts/build.sh --target shardrec).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="${SHARDREC_BIN:-$ROOT/build/shardrec}"
ROWS="${1:-2000000}" VOCAB="${2:-1000000}" SMALL="${3:-67108864}"
WORK="${WORKDIR:-$ROOT/build/bench/ps-out-of-core}"
mkdir -p "$WORK"
common=(--set "data.synthetic.rows=$ROWS" --set "data.synthetic.vocab_size=$VOCAB" --set "data.synthetic.dir=$WORK/data"
        --set trainer.epochs=1 --set trainer.progress=LINES --set trainer.log_every=200)
run() {  # name, extra --set
  local name="$1"; shift
  "$BIN" train "$ROOT/configs/deepfm.pbtxt" --output-dir "$WORK/$name" "${common[@]}" "$@" > "$WORK/$name.log" 2>&1
  python3 - "$WORK/$name/metrics.json" "$name" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
t, p = m["throughput"], m["ps"]
print(f"| {sys.argv[2]} | {t['train_samples_per_sec']:,.0f} | {t['step_samples_per_sec']:,.0f} | {p['rows']:,} | {p['rows_cached']:,} | {p['cache_hit_rate']:.3f} | {p['evictions']:,} | {p['rocksdb_bytes']/2**20:,.0f} | {m['validation'].get('auc', float('nan')):.4f} |")
PY
}
echo "DeepFM, $ROWS generated rows, $VOCAB ids per field, batch 2048, 1 epoch"
echo
echo "| run | samples/s | step samples/s | PS rows | rows in memory | cache hit rate | evictions | RocksDB MiB | validation AUC |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
run cached --set ps.cache_bytes=34359738368
run small-cache --set "ps.cache_bytes=$SMALL"

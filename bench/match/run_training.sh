#!/usr/bin/env bash
# Matching training benchmark: for each two-tower config (configs/{dssm,facebook_dssm,youtube_dnn}
# on generated match data, 200k rows, 3000 movies), `shardrec train` at batch 2048 for the
# config's epochs, then a markdown table of training samples/s (metrics.json "throughput") and the
# test split's Recall@10 / NDCG@10 (leave-last-out per user, exact top-K over every movie).
#   scripts/build.sh --target shardrec && bench/match/run_training.sh [extra --set flags]
# THREADS (default 2), MODELS (default "dssm facebook_dssm youtube_dnn"), OUT (default
# build/bench/match) can be overridden.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
BIN="$BUILD_DIR/shardrec"
OUT="${OUT:-$BUILD_DIR/bench/match}"
THREADS="${THREADS:-2}"
MODELS="${MODELS:-dssm facebook_dssm youtube_dnn}"
if [[ ! -x "$BIN" ]]; then
  echo "error: $BIN not found; build it first: scripts/build.sh --target shardrec" >&2
  exit 1
fi
mkdir -p "$OUT"
for m in $MODELS; do
  echo "== $m" >&2
  "$BIN" train "$ROOT/configs/$m.pbtxt" --set trainer.num_threads="$THREADS" --set trainer.batch_size=2048 \
    --set trainer.progress=LINES --set trainer.early_stopping_patience=0 --output-dir "$OUT/$m" "$@" 2> "$OUT/$m.log" >&2
done
python3 - "$OUT" $MODELS <<'PY'
import json, sys
out, models = sys.argv[1], sys.argv[2:]
print("| model | epochs | train samples/s | step samples/s | test Recall@10 | test NDCG@10 | test Recall@50 | items |")
print("|---|---|---|---|---|---|---|---|")
for m in models:
    j = json.load(open(f"{out}/{m}/metrics.json"))
    t, th = j["test"], j["throughput"]
    print(f"| {m} | {len(j['epochs'])} | {th['train_samples_per_sec']:.0f} | {th['step_samples_per_sec']:.0f} | "
          f"{t.get('recall@10', float('nan')):.4f} | {t.get('ndcg@10', float('nan')):.4f} | {t.get('recall@50', float('nan')):.4f} | {t.get('items', 0):.0f} |")
PY

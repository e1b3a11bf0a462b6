#!/usr/bin/env bash
# ShardRec vs Torch-RecHub (Python) on the same generated CTR data, same machine, same run:
# DeepFM and WideDeep, same hyper-parameters and epochs. Prints a markdown table (also written to
# WORKDIR/table.md, with every run's JSON and log next to it). See bench/rechub/README.md.
#
#   TORCH_RECHUB_SRC=/path/to/torch-rechub bench/rechub/compare.sh [options]
#
# Options (defaults in brackets):
#   --rows N          rows generated in all, 80/10/10 train/validation/test [300000]
#   --seed S          gen-data seed [1]
#   --vocab V         distinct ids per categorical field [10000]
#   --epochs E        epochs for both sides [2, the value in configs/*.pbtxt]
#   --models "M ..."  deepfm and/or widedeep ["deepfm widedeep"]
#   --stock-steps K   also run the reference with Torch-RecHub's own DataLoader input path:
#                     0 = full epochs (with AUCs), K > 0 = only K steps per epoch (throughput
#                     only), -1 = skip [0]
#   --workdir DIR     data, outputs, logs [build/bench/rechub]
# Environment: TORCH_RECHUB_SRC (required), SHARDREC_BIN [build/shardrec], PYTHON
# [/usr/bin/python3, which must have Debian's python3-torch], REF_OMP_WAIT_POLICY [PASSIVE; "unset"
# leaves OpenMP's default], REF_THREADS [2].
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/bench/rechub"
ROWS=300000 SEED=1 VOCAB=10000 EPOCHS=2 MODELS="deepfm widedeep" STOCK_STEPS=0
WORKDIR="$ROOT/build/bench/rechub"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rows) ROWS="$2"; shift 2 ;;
    --seed) SEED="$2"; shift 2 ;;
    --vocab) VOCAB="$2"; shift 2 ;;
    --epochs) EPOCHS="$2"; shift 2 ;;
    --models) MODELS="$2"; shift 2 ;;
    --stock-steps) STOCK_STEPS="$2"; shift 2 ;;
    --workdir) WORKDIR="$2"; shift 2 ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
SHARDREC_BIN="${SHARDREC_BIN:-$ROOT/build/shardrec}"
PYTHON="${PYTHON:-/usr/bin/python3}"
REF_OMP_WAIT_POLICY="${REF_OMP_WAIT_POLICY:-PASSIVE}"
REF_THREADS="${REF_THREADS:-2}"

# ---- prerequisites ------------------------------------------------------------------------------
if [[ -z "${TORCH_RECHUB_SRC:-}" ]]; then
  cat >&2 <<'EOF'
error: TORCH_RECHUB_SRC is not set. It must name a directory that contains the torch_rechub
package (Torch-RecHub is not vendored in this repository), e.g.
  git clone https://github.com/datawhalechina/torch-rechub /tmp/torch-rechub
  TORCH_RECHUB_SRC=/tmp/torch-rechub bench/rechub/compare.sh
EOF
  exit 2
fi
if [[ ! -f "$TORCH_RECHUB_SRC/torch_rechub/models/ranking/deepfm.py" ]]; then
  echo "error: TORCH_RECHUB_SRC=$TORCH_RECHUB_SRC has no torch_rechub/models/ranking/deepfm.py" >&2
  exit 2
fi
if ! "$PYTHON" -c 'import torch, pandas, sklearn, tqdm, numpy' 2>/dev/null; then
  cat >&2 <<EOF
error: $PYTHON cannot import torch, pandas, sklearn, tqdm and numpy. On Debian/Ubuntu:
  sudo apt-get install -y python3-torch python3-pandas python3-sklearn python3-tqdm
and run with PYTHON=/usr/bin/python3 (a pyenv/venv python3 on PATH does not see those packages).
EOF
  exit 2
fi
if [[ ! -x "$SHARDREC_BIN" ]]; then
  echo "error: $SHARDREC_BIN not found; build it first (scripts/build.sh)" >&2
  exit 2
fi
TORCH_RECHUB_REV="$(git -C "$TORCH_RECHUB_SRC" rev-parse HEAD 2>/dev/null || true)"
export TORCH_RECHUB_REV

mkdir -p "$WORKDIR"
DATA="$WORKDIR/data-r$ROWS-s$SEED-v$VOCAB"
LOADLOG="$WORKDIR/load.log"
: > "$LOADLOG"
load() { echo "$(date +%T) $1: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$LOADLOG" >&2; }

# ---- data ---------------------------------------------------------------------------------------
if [[ ! -f "$DATA/test.csv" ]]; then
  echo "== generating $ROWS rows (seed $SEED, vocab $VOCAB) into $DATA" >&2
  "$SHARDREC_BIN" gen-data ctr --rows "$ROWS" --seed "$SEED" --vocab "$VOCAB" --out "$DATA" >&2
fi

# The reference runs with the same allocator tuning the shardrec binary applies to itself
# (src/common/process_tuning.h): no mmap'd chunks, no trimming of the heap top.
ref_env=(env -u OMP_WAIT_POLICY MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 MALLOC_TOP_PAD_=67108864)
[[ "$REF_OMP_WAIT_POLICY" == unset ]] || ref_env+=(OMP_WAIT_POLICY="$REF_OMP_WAIT_POLICY")

run_shardrec() {  # model
  local m="$1" out="$WORKDIR/shardrec-$1"
  rm -rf "$out"
  load "before shardrec $m"
  "$SHARDREC_BIN" train "$ROOT/configs/$m.pbtxt" \
    --set "data.files.train=$DATA/train.csv" --set "data.files.validation=$DATA/validation.csv" \
    --set "data.files.test=$DATA/test.csv" --set "trainer.epochs=$EPOCHS" --set trainer.progress=LINES \
    --output-dir "$out" > "$WORKDIR/shardrec-$m.log" 2>&1 || { cat "$WORKDIR/shardrec-$m.log" >&2; exit 1; }
  tail -1 "$WORKDIR/shardrec-$m.log" >&2
}

run_ref() {  # model loader max_steps
  local m="$1" loader="$2" steps="$3" tag="rechub-$1-$2"
  load "before torch-rechub $m ($loader loader)"
  "${ref_env[@]}" "$PYTHON" "$HERE/rechub_reference.py" --data "$DATA" --model "$m" --epochs "$EPOCHS" \
    --loader "$loader" --max-steps "$steps" --threads "$REF_THREADS" --quiet --out "$WORKDIR/$tag.json" \
    > /dev/null 2> "$WORKDIR/$tag.log" || { cat "$WORKDIR/$tag.log" >&2; exit 1; }
  grep '^\[rechub' "$WORKDIR/$tag.log" >&2 || true
}

# ---- runs (per model: ShardRec, then the reference, one process at a time) ----------------------
for m in $MODELS; do
  rm -f "$WORKDIR/rechub-$m-tensor.json" "$WORKDIR/rechub-$m-rechub.json"
  run_shardrec "$m"
  run_ref "$m" tensor 0
  [[ "$STOCK_STEPS" -lt 0 ]] || run_ref "$m" rechub "$STOCK_STEPS"
done
load "end"

# ---- table --------------------------------------------------------------------------------------
"$PYTHON" - "$WORKDIR" "$MODELS" "$ROWS" "$SEED" "$VOCAB" "$EPOCHS" <<'EOF' | tee "$WORKDIR/table.md"
import json, os, sys
wd, models, rows, seed, vocab, epochs = sys.argv[1], sys.argv[2].split(), *sys.argv[3:]
def f(x, d=4):
    return "n/a" if x is None else f"{x:.{d}f}"
print(f"Data: shardrec gen-data ctr --rows {rows} --seed {seed} --vocab {vocab}; {epochs} epoch(s) per side.\n")
print("| model | impl | train samples/s | validation AUC | test AUC | ShardRec / this (speed) |")
print("|---|---|---:|---:|---:|---:|")
summary = []
for m in models:
    s = json.load(open(os.path.join(wd, f"shardrec-{m}", "metrics.json")))
    sr = s["throughput"]["train_samples_per_sec"]
    srs = s["throughput"]["step_samples_per_sec"]
    print(f"| {m} | ShardRec | {sr:,.0f} (step only: {srs:,.0f}) | {f(s['validation'].get('auc'))} | {f(s['test'].get('auc'))} | |")
    summary.append({"model": m, "impl": "shardrec", "train_samples_per_sec": sr, "step_samples_per_sec": srs,
                    "validation_auc": s["validation"].get("auc"), "test_auc": s["test"].get("auc"),
                    "best_epoch": s.get("best_epoch")})
    for loader, label in [("tensor", "Torch-RecHub (tensor batches)"), ("rechub", "Torch-RecHub (its DataLoader)")]:
        p = os.path.join(wd, f"rechub-{m}-{loader}.json")
        if not os.path.exists(p):
            continue
        r = json.load(open(p))
        partial = r["hyper"]["max_steps"] > 0
        va = None if partial else r["validation_auc"]
        te = None if partial else r["test_auc"]
        if partial:
            label += f", {r['hyper']['max_steps']} steps/epoch"
        rs = r["train_samples_per_sec"]
        print(f"| {m} | {label} | {rs:,.0f} | {f(va)} | {f(te)} | {sr / rs:.2f}x |")
        summary.append({"model": m, "impl": "torch-rechub", "loader": loader, "train_samples_per_sec": rs,
                        "validation_auc": va, "test_auc": te, "best_epoch": r["best_epoch"],
                        "speed_ratio_shardrec_over_ref": sr / rs, "partial_epochs": partial})
json.dump(summary, open(os.path.join(wd, "summary.json"), "w"), indent=2)
EOF
echo >&2
echo "load averages (1/5/15 min) during the run:" >&2
cat "$LOADLOG" >&2
echo "files: $WORKDIR (table.md, summary.json, *.json, *.log)" >&2

#!/usr/bin/env bash
# ShardRec vs Torch-RecHub (Python) on the same generated data, same machine, same run: every
# ranking model and the multi-task models, each with the hyper-parameters of its ShardRec config
# (the reference reads the same configs/<model>.pbtxt). Prints a markdown table (also written to
# WORKDIR/table.md, with every run's JSON and log next to it). See bench/rechub/README.md.
#
#   TORCH_RECHUB_SRC=/path/to/torch-rechub bench/rechub/compare.sh [options]
#
# Options (defaults in brackets):
#   --models LIST     comma- or space-separated, from: deepfm widedeep dcn dcnv2 afm fibinet edcn
#                     (CTR data), din dien bst (sequence data), shared_bottom esmm mmoe ple
#                     (multi-task data) [all of them; a model without configs/<model>.pbtxt is
#                     skipped with a warning]
#   --rows N          CTR rows generated in all, 80/10/10 train/validation/test [100000]
#   --seq-rows N      sequence rows (din, dien, bst) [20000]
#   --mtl-rows N      multi-task rows [400000]
#   --seed S          gen-data seed [1]
#   --vocab V         distinct ids per categorical field (CTR) / items (sequence) [10000]
#   --epochs E        epochs for both sides [1; "config" = each config's trainer.epochs]
#   --stock-steps K   also run the reference with Torch-RecHub's own DataLoader input path:
#                     0 = full epochs (with AUCs), K > 0 = only K steps per epoch (throughput
#                     only), -1 = skip [10]
#   --shipped-configs run the configs exactly as shipped; by default the two models whose
#                     Torch-RecHub class cannot read dense features (esmm, fibinet) get
#                     `--set model.X.features=<the sparse ones>` on BOTH sides, so that both see
#                     the same inputs (see README.md)
#   --workdir DIR     data, outputs, logs [build/bench/rechub]
# Environment: TORCH_RECHUB_SRC (required), SHARDREC_BIN [build/shardrec], PYTHON
# [/usr/bin/python3, which must have Debian's python3-torch], REF_OMP_WAIT_POLICY [PASSIVE; "unset"
# leaves OpenMP's default], THREADS [2: torch threads of the reference and ShardRec's
# trainer.num_threads].
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/bench/rechub"
ALL_MODELS="deepfm widedeep dcn dcnv2 afm fibinet edcn din dien bst shared_bottom esmm mmoe ple"
ROWS=100000 SEQ_ROWS=20000 MTL_ROWS=400000 SEED=1 VOCAB=10000 EPOCHS=1 MODELS="$ALL_MODELS" STOCK_STEPS=10
SHIPPED=0
WORKDIR="$ROOT/build/bench/rechub"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rows) ROWS="$2"; shift 2 ;;
    --seq-rows) SEQ_ROWS="$2"; shift 2 ;;
    --mtl-rows) MTL_ROWS="$2"; shift 2 ;;
    --seed) SEED="$2"; shift 2 ;;
    --vocab) VOCAB="$2"; shift 2 ;;
    --epochs) EPOCHS="$2"; shift 2 ;;
    --models) MODELS="${2//,/ }"; shift 2 ;;
    --stock-steps) STOCK_STEPS="$2"; shift 2 ;;
    --shipped-configs) SHIPPED=1; shift ;;
    --workdir) WORKDIR="$2"; shift 2 ;;
    -h|--help) sed -n '2,31p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
SHARDREC_BIN="${SHARDREC_BIN:-$ROOT/build/shardrec}"
PYTHON="${PYTHON:-/usr/bin/python3}"
REF_OMP_WAIT_POLICY="${REF_OMP_WAIT_POLICY:-PASSIVE}"
THREADS="${THREADS:-${REF_THREADS:-2}}"

data_kind() {  # model -> ctr | seq | mtl
  case "$1" in
    deepfm|widedeep|dcn|dcnv2|afm|fibinet|edcn) echo ctr ;;
    din|dien|bst) echo seq ;;
    shared_bottom|esmm|mmoe|ple) echo mtl ;;
    *) echo "error: unknown model '$1' (known: $ALL_MODELS)" >&2; exit 2 ;;
  esac
}
for m in $MODELS; do data_kind "$m" > /dev/null; done

# Config overrides applied to BOTH sides (unless --shipped-configs): Torch-RecHub's ESMM and
# FiBiNet cannot take dense features (ESMM sizes its towers from the sparse features only; FiBiNet's
# EmbeddingLayer(squeeze_dim=False) silently drops dense values), while ShardRec's configs feed
# them in. Restricting ShardRec to the sparse features gives both sides the same inputs.
overrides() {  # model -> one --set assignment per line
  [[ "$SHIPPED" == 1 ]] && return 0
  case "$1" in
    esmm) echo "model.esmm.features=$(seq -s, -f 'C%g' 1 12)" ;;
    fibinet) echo "model.fibinet.features=$(seq -s, -f 'C%g' 1 26)" ;;
  esac
}

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
  echo "error: $SHARDREC_BIN not found; build it first (scripts/build.sh --target shardrec)" >&2
  exit 2
fi
TORCH_RECHUB_REV="$(git -C "$TORCH_RECHUB_SRC" rev-parse HEAD 2>/dev/null || true)"
export TORCH_RECHUB_REV

mkdir -p "$WORKDIR"
LOADLOG="$WORKDIR/load.log"
: > "$LOADLOG"
load() { echo "$(date +%T) $1: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$LOADLOG" >&2; }

# ---- data (generated once per kind and size, reused by later runs) ------------------------------
data_dir() {  # kind -> directory
  case "$1" in
    ctr) echo "$WORKDIR/data-ctr-r$ROWS-s$SEED-v$VOCAB" ;;
    seq) echo "$WORKDIR/data-seq-r$SEQ_ROWS-s$SEED-v$VOCAB" ;;
    mtl) echo "$WORKDIR/data-mtl-r$MTL_ROWS-s$SEED" ;;
  esac
}
ensure_data() {  # kind
  local kind="$1" dir
  dir="$(data_dir "$kind")"
  [[ -f "$dir/test.csv" ]] && return 0
  case "$kind" in
    ctr) set -- --rows "$ROWS" --vocab "$VOCAB" ;;
    seq) set -- --rows "$SEQ_ROWS" --vocab "$VOCAB" ;;
    mtl) set -- --rows "$MTL_ROWS" ;;
  esac
  echo "== generating $kind data ($*, seed $SEED) into $dir" >&2
  "$SHARDREC_BIN" gen-data "$kind" "$@" --seed "$SEED" --out "$dir" >&2
}

# The reference runs with the same allocator tuning the shardrec binary applies to itself
# (src/common/process_tuning.h): no mmap'd chunks, no trimming of the heap top.
ref_env=(env -u OMP_WAIT_POLICY MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 MALLOC_TOP_PAD_=67108864)
[[ "$REF_OMP_WAIT_POLICY" == unset ]] || ref_env+=(OMP_WAIT_POLICY="$REF_OMP_WAIT_POLICY")

epochs_of() {  # model -> epochs for both sides
  if [[ "$EPOCHS" == config ]]; then
    sed -n '/^trainer *{/,/^}/s/^ *epochs: *\([0-9]*\).*/\1/p' "$ROOT/configs/$1.pbtxt" | head -1
  else
    echo "$EPOCHS"
  fi
}

run_shardrec() {  # model data_dir epochs -> 0 on success
  local m="$1" data="$2" epochs="$3" out="$WORKDIR/shardrec-$1" a
  local sets=(--set "data.files.train=$data/train.csv" --set "data.files.validation=$data/validation.csv"
              --set "data.files.test=$data/test.csv" --set "trainer.epochs=$epochs" --set trainer.progress=LINES
              --set "trainer.num_threads=$THREADS")
  while IFS= read -r a; do [[ -n "$a" ]] && sets+=(--set "$a"); done < <(overrides "$m")
  rm -rf "$out"
  load "before shardrec $m"
  if ! "$SHARDREC_BIN" train "$ROOT/configs/$m.pbtxt" "${sets[@]}" --output-dir "$out" > "$WORKDIR/shardrec-$m.log" 2>&1; then
    echo "!! shardrec $m failed (log: $WORKDIR/shardrec-$m.log):" >&2
    tail -5 "$WORKDIR/shardrec-$m.log" >&2
    return 1
  fi
  tail -1 "$WORKDIR/shardrec-$m.log" >&2
}

run_ref() {  # model data_dir epochs loader max_steps -> 0 on success
  local m="$1" data="$2" epochs="$3" loader="$4" steps="$5" tag="rechub-$1-$4" a
  local sets=()
  while IFS= read -r a; do [[ -n "$a" ]] && sets+=(--set "$a"); done < <(overrides "$m")
  load "before torch-rechub $m ($loader loader)"
  if ! "${ref_env[@]}" "$PYTHON" "$HERE/rechub_reference.py" --data "$data" --model "$m" --epochs "$epochs" \
      --loader "$loader" --max-steps "$steps" --threads "$THREADS" --quiet "${sets[@]}" --out "$WORKDIR/$tag.json" \
      > /dev/null 2> "$WORKDIR/$tag.log"; then
    echo "!! torch-rechub $m ($loader) failed (log: $WORKDIR/$tag.log):" >&2
    tail -5 "$WORKDIR/$tag.log" >&2
    return 1
  fi
  grep '^\[rechub' "$WORKDIR/$tag.log" >&2 || true
}

# ---- runs (per model: ShardRec, then the reference, one process at a time) ----------------------
RAN=""
for m in $MODELS; do
  if [[ ! -f "$ROOT/configs/$m.pbtxt" ]]; then
    echo "!! configs/$m.pbtxt not found: $m skipped" >&2
    continue
  fi
  kind="$(data_kind "$m")"
  ensure_data "$kind"
  data="$(data_dir "$kind")"
  epochs="$(epochs_of "$m")"
  rm -rf "$WORKDIR/shardrec-$m" "$WORKDIR/rechub-$m-tensor.json" "$WORKDIR/rechub-$m-rechub.json"
  echo "== $m ($kind data, $epochs epoch(s))" >&2
  run_shardrec "$m" "$data" "$epochs" || true
  run_ref "$m" "$data" "$epochs" tensor 0 || true
  [[ "$STOCK_STEPS" -lt 0 ]] || run_ref "$m" "$data" "$epochs" rechub "$STOCK_STEPS" || true
  RAN="$RAN $m"
done
load "end"

# ---- table --------------------------------------------------------------------------------------
export CMP_WORKDIR="$WORKDIR" CMP_MODELS="$RAN" CMP_EPOCHS="$EPOCHS" CMP_SEED="$SEED" CMP_VOCAB="$VOCAB"
export CMP_ROWS="$ROWS" CMP_SEQ_ROWS="$SEQ_ROWS" CMP_MTL_ROWS="$MTL_ROWS" CMP_THREADS="$THREADS"
export CMP_OVERRIDES="$(for m in $RAN; do o="$(overrides "$m" | tr '\n' ' ')"; [[ -n "$o" ]] && echo "$m: $o"; done)"
"$PYTHON" "$HERE/compare_table.py" | tee "$WORKDIR/table.md"
echo >&2
echo "load averages (1/5/15 min) during the run:" >&2
cat "$LOADLOG" >&2
echo "files: $WORKDIR (table.md, summary.json, *.json, *.log)" >&2

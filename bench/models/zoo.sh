#!/usr/bin/env bash
# Training throughput and quality of the model zoo: each model's shipped config (generated data of
# its kind, the reference examples' shapes), batch 2048, a fixed number of epochs, one process
# with embedded shards. Prints samples/s (end to end and inside the step) and every validation
# metric (per task for multi-task models, top-K metrics for recall models).
#   bench/models/zoo.sh ranking|multitask|recall|all|MODEL...    (needs build/shardrec)
# EPOCHS (default 1) and ROWS (default: the config's) override the configs.
set -euo pipefail
cd "$(dirname "$0")/../.."
ranking=(widedeep deepfm dcn dcnv2 afm fibinet edcn din dien bst)
multitask=(shared_bottom esmm mmoe ple)
recall=(dssm facebook_dssm youtube_dnn gru4rec narm sasrec mind)
case "${1:-all}" in
  ranking) models=("${ranking[@]}") ;;
  multitask) models=("${multitask[@]}") ;;
  recall) models=("${recall[@]}") ;;
  all) models=("${ranking[@]}" "${multitask[@]}" "${recall[@]}") ;;
  *) models=("$@") ;;
esac
work=${WORK:-/tmp/shardrec-zoo}
mkdir -p "$work"
printf "%-14s %10s %10s %8s  %s\n" model "samples/s" "step s/s" "seconds" "validation"
for m in "${models[@]}"; do
  config=configs/$m.pbtxt
  [ -f "$config" ] || { printf "%-14s (no %s)\n" "$m" "$config"; continue; }
  sets=(--set trainer.epochs=${EPOCHS:-1} --set trainer.batch_size=2048 --set trainer.progress=QUIET
        --set trainer.checkpoints=false --set trainer.early_stopping_patience=0)
  [ -n "${ROWS:-}" ] && sets+=(--set data.synthetic.rows=$ROWS)
  start=$(date +%s%N)
  if ! build/shardrec train "$config" "${sets[@]}" --output-dir "$work/$m" >"$work/$m.log" 2>&1; then
    printf "%-14s failed: see %s\n" "$m" "$work/$m.log"
    continue
  fi
  seconds=$(( ($(date +%s%N) - start) / 1000000 ))
  /usr/bin/python3 - "$m" "$work/$m/metrics.json" "$seconds" <<'PY'
import json, sys
name, path, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]) / 1000
m = json.load(open(path))
t = m["throughput"]
val = " ".join(f"{k} {v:.4f}" for k, v in sorted(m["validation"].items()) if k != "rows" and v is not None)
print(f"{name:14s} {t['train_samples_per_sec']:>10.0f} {t['step_samples_per_sec']:>10.0f} {seconds:>8.1f}  {val}")
PY
done

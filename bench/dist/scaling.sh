#!/usr/bin/env bash
# Data-parallel scaling on this machine: samples/s of one process (embedded shards) vs
# `shardrec launch` with 1-2 workers and 1-2 PS servers, and the gradient sync's share of a step
# (the "sync" phase: allreduce time left after backward, with overlap).
#   bench/dist/scaling.sh [MODEL ...]      (default: deepfm dcnv2; needs build/shardrec)
# Every run: the model's shipped config, ROWS generated rows, 1 epoch, batch 2048 per worker.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=build/shardrec
rows=${ROWS:-200000}
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(deepfm dcnv2)
work=${WORK:-/tmp/shardrec-scaling}
rm -rf "$work"
mkdir -p "$work"

report() {  # label run_dir
  /usr/bin/python3 - "$1" "$2/metrics.json" <<'PY'
import json, sys
label, path = sys.argv[1], sys.argv[2]
m = json.load(open(path))
e = m["epochs"][-1]
ms = e["step_ms"]
step = sum(v for k, v in ms.items() if k != "wait")
print(f"{label:34s} {m['throughput']['train_samples_per_sec']:>10.0f} {step:>9.1f} {ms.get('sync', 0):>8.1f} {ms.get('push', 0):>8.1f}"
      f" {m['validation'].get('auc', float('nan')):>8.4f}")
PY
}

for model in "${models[@]}"; do
  config=configs/$model.pbtxt
  common=(--set data.synthetic.rows=$rows --set data.synthetic.dir=$work/data-$model --set trainer.epochs=1
          --set trainer.batch_size=2048 --set trainer.progress=QUIET --set trainer.checkpoints=false
          --set trainer.early_stopping_patience=0)
  echo "== $model ($rows rows, batch 2048 per worker, $(nproc) cores)"
  printf "%-34s %10s %9s %8s %8s %8s\n" run "samples/s" "step ms" "sync ms" "push ms" "val auc"
  $bin train $config "${common[@]}" --output-dir $work/$model-embedded >/dev/null 2>&1
  report "1 process, embedded shards" $work/$model-embedded
  for shape in "1 1" "1 2" "2 2"; do
    set -- $shape
    out=$work/$model-ps$1-w$2
    $bin launch --ps $1 --workers $2 $config "${common[@]}" --output-dir $out >$out.log 2>&1 ||
      { echo "failed: see $out.log"; exit 1; }
    report "launch: $1 PS, $2 worker(s)" $out
  done
done

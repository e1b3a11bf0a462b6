#!/usr/bin/env bash
# Single node: 2 PS servers and one worker per GPU (CPU-only machine: --workers N).
#   launcher/local/multi_gpu.sh configs/deepfm.pbtxt [--set trainer.batch_size=4096 ...]
# Ctrl-C stops every process; rerun with --resume runs/<name>/checkpoints to continue.
set -euo pipefail
config=${1:?usage: $0 CONFIG [shardrec launch options]}
shift
exec shardrec launch --ps "${SHARDREC_NUM_PS:-2}" "$config" "$@"

#!/usr/bin/env bash
# Open MPI with a hostfile: NP ranks, the first NUM_PS serve PS shards, the rest train.
#   NP=8 NUM_PS=2 HOSTFILE=hosts launcher/mpirun/train_hostfile.sh configs/deepfm.pbtxt [--set ...]
# hosts: one line per machine, e.g. "node1 slots=4". output_dir must be on a shared filesystem
# for checkpoints (set it with --set output_dir=/shared/runs/deepfm).
set -euo pipefail
config=${1:?usage: $0 CONFIG [--set ...]}
shift
: "${SHARDREC_PS_TOKEN:=$(openssl rand -hex 24)}"
export SHARDREC_PS_TOKEN
exec mpirun -np "${NP:-4}" --hostfile "${HOSTFILE:-hosts}" \
  -x SHARDREC_PS_TOKEN -x OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}" \
  shardrec train "$config" \
  --set dist.num_ps="${NUM_PS:-2}" --set dist.backend=MPI --set dist.host=auto "$@"

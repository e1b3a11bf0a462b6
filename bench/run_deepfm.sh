#!/usr/bin/env bash
# Runs the DeepFM benchmark from a built tree with its defaults (vocab 1e3 and 1e6 per field,
# batch 2048): prints a markdown table and writes JSON next to it.
#   scripts/build.sh --target deepfm_bench && bench/run_deepfm.sh [extra deepfm_bench flags]
# BUILD_DIR (default build/) and OUT (default build/bench/deepfm_bench.json) can be overridden.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
BIN="$BUILD_DIR/bench/deepfm_bench"
OUT="${OUT:-$BUILD_DIR/bench/deepfm_bench.json}"
if [[ ! -x "$BIN" ]]; then
  echo "error: $BIN not found; build it first: scripts/build.sh --target deepfm_bench" >&2
  exit 1
fi
exec "$BIN" --config "$ROOT/configs/deepfm.pbtxt" --out "$OUT" "$@"

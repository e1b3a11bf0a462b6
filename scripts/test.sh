#!/usr/bin/env bash
# Installs what is missing, builds everything (binary, tests, benchmarks) and runs the whole test
# suite under ctest. This is what CI runs (.ci/run).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/build.sh"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
cd "$BUILD_DIR"
ctest --output-on-failure -j "${CTEST_JOBS:-2}" --timeout 600 "$@"

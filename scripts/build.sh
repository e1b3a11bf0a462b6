#!/usr/bin/env bash
# Configures (once) and builds ShardRec with clang + lld + ccache + ninja into build/ (or $BUILD_DIR).
# Extra arguments go to `cmake --build` (e.g. --target shardrec). Builds are serialized with a lock
# so that parallel callers on a 2-core machine don't thrash.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
BUILD_TYPE="${BUILD_TYPE:-Release}"
JOBS="${JOBS:-$(nproc)}"
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}"
# PCH + ccache need these to hit.
export CCACHE_SLOPPINESS="${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}"

exec 9>"/tmp/shardrec-build.lock"
flock 9
if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  # SHARDREC_CMAKE_ARGS: extra configure arguments (e.g. -DSHARDREC_BUILD_TESTS=OFF in images).
  # shellcheck disable=SC2086
  CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" ${SHARDREC_CMAKE_ARGS:-} >/dev/null
fi
cmake --build "$BUILD_DIR" -j "$JOBS" "$@"

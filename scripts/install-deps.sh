#!/usr/bin/env bash
# Installs the Debian 12 packages ShardRec builds and runs with. Idempotent: packages that are
# already present are skipped, and apt is not touched at all when nothing is missing.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build ccache clang lld pkg-config git
  libtorch-dev libopenblas0-pthread
  libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
  librocksdb-dev libgloo-dev libopenmpi-dev openmpi-bin
  libgtest-dev libgmock-dev
  libjemalloc-dev libcli11-dev
  libfaiss-dev  # optional: retrieval with a faiss index (matching.retrieval.backend FAISS)
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all packages present"
fi

# LibTorch's BLAS_INFO=generic resolves through the libblas.so.3 alternative; point it at OpenBLAS
# (reference BLAS is ~20x slower on GEMM).
blas=$(update-alternatives --list libblas.so.3-x86_64-linux-gnu 2>/dev/null | grep -m1 openblas-pthread || true)
if [[ -n "$blas" ]]; then
  ${SUDO:-} update-alternatives --set libblas.so.3-x86_64-linux-gnu "$blas" >/dev/null 2>&1 || true
fi

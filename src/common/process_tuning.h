#pragma once
// Process-wide settings every training process (the shardrec binary, the benchmarks) starts with.
#include <malloc.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>

namespace shardrec {

// glibc returns freed large tensors to the OS and faults them in again every step; on models with
// big activations that costs as much as the math (stack notes: DIN 85 -> 1,060 samples/s).
// The trim threshold is the largest mallopt takes (2 GiB; the benchmarks give the Python
// reference 64 GiB through the environment): 64 MiB still gave back AFM's per-step activations
// (62k page faults per step).
inline void TuneMalloc() {
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
  mallopt(M_TOP_PAD, 64 * 1024 * 1024);
}

// LibTorch's OpenMP threads spin after every parallel region by default, taking the cores from the
// reader and prefetch threads (and from OpenBLAS's own threads): DeepFM at batch 2048 ran 5k
// samples/s spinning vs 27-44k passive on 2 busy cores. libgomp reads OMP_WAIT_POLICY once, when
// it is loaded, so set it and re-execute this program; a user's own setting wins.
inline void EnsurePassiveOpenMp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  execv("/proc/self/exe", argv);  // only returns on failure: then run with the default policy
}

}  // namespace shardrec

#include "dist/accelerator.h"

#ifdef SHARDREC_HAVE_NCCL
#include <cuda_runtime_api.h>
#include <nccl.h>
#endif

namespace shardrec::dist {

AcceleratorInfo ProbeAccelerators() {
  AcceleratorInfo info;
#ifdef SHARDREC_HAVE_NCCL
  info.nccl_compiled = true;
  int v = 0;
  if (ncclGetVersion(&v) == ncclSuccess) info.nccl_version = v;
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err == cudaSuccess) {
    info.cuda_devices = n;
  } else {
    // Expected on machines with the CUDA toolkit but no driver/GPU: the CPU path is used.
    info.note = std::string("CUDA: ") + cudaGetErrorString(err);
  }
#else
  info.note = "built without CUDA/NCCL (not found at configure time, or SHARDREC_WITH_CUDA=OFF)";
#endif
  return info;
}

}  // namespace shardrec::dist

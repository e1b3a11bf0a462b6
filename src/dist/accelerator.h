#pragma once
// What this build and this machine offer for GPU training: whether the NCCL backend was compiled
// in, its library version, and how many CUDA devices the driver reports (0 without a driver).
#include <string>

namespace shardrec::dist {

struct AcceleratorInfo {
  bool nccl_compiled = false;
  int nccl_version = 0;   // e.g. 22809 for 2.28.9; 0 when not compiled
  int cuda_devices = 0;   // 0 when there is no driver or no GPU
  std::string note;       // why the GPU path is unavailable, when it is
};

AcceleratorInfo ProbeAccelerators();

}  // namespace shardrec::dist

#include "train/device.h"

#include <torch/cuda.h>

#include "common/error.h"

namespace shardrec::train {

torch::Device ResolveDevice(const std::string& setting, int local_rank) {
  const bool cuda = torch::cuda::is_available();
  const int count = cuda ? static_cast<int>(torch::cuda::device_count()) : 0;
  if (setting == "cpu" || (setting == "auto" && !cuda)) return torch::kCPU;
  if (setting == "auto" || setting == "cuda") return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank % count));
  if (setting.rfind("cuda:", 0) == 0) {
    if (!cuda) throw UserError("trainer.device " + setting + ": this LibTorch build has no CUDA or no GPU is visible");
    int index = -1;
    try {
      index = std::stoi(setting.substr(5));
    } catch (const std::exception&) {
    }
    if (index < 0 || index >= count)
      throw UserError("trainer.device " + setting + ": " + std::to_string(count) + " GPU(s) are visible");
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw ConfigError("field trainer.device: '" + setting + "' is not one of auto, cpu, cuda, cuda:N");
}

}  // namespace shardrec::train

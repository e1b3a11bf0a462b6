#pragma once
// Where the dense part of a model trains. The PS rows always live on the host; a batch's pulled
// rows are copied to the device as leaf tensors and their gradients copied back for the push.
#include <torch/types.h>

#include <string>

namespace shardrec::train {

// "auto": the GPU of this local rank when LibTorch has CUDA and sees a GPU, else the CPU;
// "cpu"; "cuda" (the GPU of this local rank) or "cuda:N". Throws ConfigError for other values
// and UserError for a CUDA device this build or machine does not have.
torch::Device ResolveDevice(const std::string& setting, int local_rank);

}  // namespace shardrec::train

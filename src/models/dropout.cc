#include "models/dropout.h"

#include <ATen/Parallel.h>

#include <cmath>

#include "common/hash.h"

namespace shardrec::models {

torch::Tensor Dropout(const torch::Tensor& x, double p) {
  TORCH_CHECK(p >= 0 && p <= 1, "dropout rate must be in [0, 1], got ", p);
  if (p == 0) return x;
  if (p == 1) return x * 0;  // everything dropped (torch::dropout's result too)
  // One draw from torch's generator per call: the seed of this mask.
  const uint64_t seed = static_cast<uint64_t>(torch::randint(std::numeric_limits<int64_t>::max(), {1}, torch::kInt64).item<int64_t>());
  // Keep an element when its 16-bit uniform is below the threshold: P(keep) = threshold / 65536,
  // within 1.6e-5 of 1 - p.
  const uint32_t threshold = static_cast<uint32_t>(std::lround((1.0 - p) * 65536.0));
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  torch::Tensor mask = torch::empty(x.sizes(), x.options().dtype(torch::kFloat32).requires_grad(false));
  float* m = mask.data_ptr<float>();
  const int64_t n = mask.numel();
  constexpr int64_t kChunk = 4096;  // elements per generator stream (a multiple of 4)
  at::parallel_for(0, (n + kChunk - 1) / kChunk, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      uint64_t state = Mix64(seed ^ static_cast<uint64_t>(c) * 0x9e3779b97f4a7c15ULL);
      const int64_t lo = c * kChunk, hi = std::min(n, lo + kChunk);
      for (int64_t i = lo; i < hi; i += 4) {
        state += 0x9e3779b97f4a7c15ULL;
        uint64_t r = Mix64(state);
        for (int64_t k = i; k < std::min(hi, i + 4); ++k, r >>= 16)
          m[k] = (static_cast<uint32_t>(r & 0xffff) < threshold) ? scale : 0.f;
      }
    }
  });
  return x * mask.to(x.dtype());
}

}  // namespace shardrec::models

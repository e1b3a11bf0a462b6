#include "train/negative_sampler.h"

#include <cmath>

#include "common/error.h"

namespace shardrec::train {

NegativeSampler::NegativeSampler(const std::vector<int64_t>& counts, double power, uint64_t seed) : rng_(seed) {
  const int64_t n = static_cast<int64_t>(counts.size());
  probability_.resize(n);
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    // pow(0, 0) == 1: with power 0 every item, seen as a positive or not, is equally likely.
    probability_[i] = std::pow(static_cast<double>(counts[i]), power);
    total += probability_[i];
  }
  if (!(total > 0)) throw UserError("negative sampling: no catalogue item has a positive count (no positive training rows?)");
  for (double& p : probability_) p /= total;

  // Vose's alias construction: slots scaled to mean 1, small ones topped up from large ones.
  accept_.resize(n);
  alias_.assign(n, 0);
  std::vector<int64_t> small, large;
  std::vector<double> scaled(n);
  for (int64_t i = 0; i < n; ++i) {
    scaled[i] = probability_[i] * static_cast<double>(n);
    (scaled[i] < 1.0 ? small : large).push_back(i);
  }
  while (!small.empty() && !large.empty()) {
    const int64_t s = small.back(), l = large.back();
    small.pop_back();
    accept_[s] = scaled[s];
    alias_[s] = l;
    scaled[l] -= 1.0 - scaled[s];
    if (scaled[l] < 1.0) {
      large.pop_back();
      small.push_back(l);
    }
  }
  for (int64_t i : large) accept_[i] = 1.0;
  for (int64_t i : small) accept_[i] = 1.0;  // rounding leftovers
}

int64_t NegativeSampler::Draw() {
  const int64_t slot = static_cast<int64_t>(rng_.Below(accept_.size()));
  return rng_.Uniform() < accept_[slot] ? slot : alias_[slot];
}

void NegativeSampler::DrawExcluding(int64_t rows, int k, const int64_t* exclude, const int64_t* exclude_offsets,
                                    int64_t* out, int max_tries) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t* ex = exclude_offsets ? exclude + exclude_offsets[r] : nullptr;
    const int64_t nex = exclude_offsets ? exclude_offsets[r + 1] - exclude_offsets[r] : 0;
    for (int j = 0; j < k; ++j) {
      int64_t item = -1;
      for (int attempt = 0; attempt <= max_tries; ++attempt) {
        const int64_t d = Draw();
        bool excluded = false;
        for (int64_t e = 0; e < nex && !excluded; ++e) excluded = ex[e] == d;
        if (!excluded) {
          item = d;
          break;
        }
      }
      out[r * k + j] = item;
    }
  }
}

}  // namespace shardrec::train

#pragma once
// Draws negative items for matching training: catalogue index i with probability
// count_i^power / sum_j count_j^power (word2vec's unigram^0.75 by default; power 0 is uniform over
// the catalogue, including items never seen as a positive). Walker's alias method: O(1) a draw,
// O(N) to build. Deterministic for a seed.
#include <cstdint>
#include <vector>

#include "data/rng.h"

namespace shardrec::train {

class NegativeSampler {
 public:
  // Throws UserError when no item has positive weight (every count 0 and power > 0).
  NegativeSampler(const std::vector<int64_t>& counts, double power, uint64_t seed);

  int64_t Draw();

  // k draws for each of `rows` rows into out[rows * k]. Row r's draws avoid the catalogue indices
  // exclude[exclude_offsets[r], exclude_offsets[r + 1]) (its positive item, ...): an excluded draw
  // is redrawn, up to max_tries times, after which it is -1 (no negative; the trainer masks it).
  // exclude_offsets may be null: nothing is excluded.
  void DrawExcluding(int64_t rows, int k, const int64_t* exclude, const int64_t* exclude_offsets, int64_t* out,
                     int max_tries = 64);

  // The probability of drawing catalogue index i.
  double probability(int64_t i) const { return probability_[i]; }
  const std::vector<double>& probabilities() const { return probability_; }
  int64_t size() const { return static_cast<int64_t>(probability_.size()); }

 private:
  std::vector<double> probability_;
  std::vector<double> accept_;   // alias method: keep slot i with this probability ...
  std::vector<int64_t> alias_;   // ... else take alias_[i]
  data::Rng rng_;
};

}  // namespace shardrec::train

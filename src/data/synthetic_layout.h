#pragma once
// One synthetic data set of the generator: a CSV header and rows that are pure functions of
// (options, row index), with a planted signal. GenerateData writes them; tests read the planted
// probabilities to measure how learnable a layout is.
#include <cstdint>
#include <memory>
#include <string>

#include "data/generator.h"

namespace shardrec::data {

class SyntheticLayout {
 public:
  virtual ~SyntheticLayout() = default;

  // The header line, without its '\n'.
  virtual std::string Header() const = 0;

  // Appends row `index` (ending in '\n') to `out`. Returns the planted probability that its
  // (first) label is 1, or -1 where the layout does not draw the label from one probability.
  virtual double AppendRow(int64_t index, std::string* out) const = 0;
};

std::unique_ptr<SyntheticLayout> MakeCtrLayout(const GeneratorOptions& options);
std::unique_ptr<SyntheticLayout> MakeSeqLayout(const GeneratorOptions& options);
std::unique_ptr<SyntheticLayout> MakeMatchLayout(const GeneratorOptions& options);
std::unique_ptr<SyntheticLayout> MakeMtlLayout(const GeneratorOptions& options);

// The layout of options.kind.
std::unique_ptr<SyntheticLayout> MakeSyntheticLayout(const GeneratorOptions& options);

}  // namespace shardrec::data

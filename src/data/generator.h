#pragma once
// Deterministic synthetic data with a planted, learnable signal, written in the same CSV layouts
// as the real sample files, so every config runs anywhere without downloads.
#include <cstdint>
#include <string>
#include <vector>

namespace shardrec::data {

enum class SyntheticKind { kCtr, kSeq, kMatch, kMtl };

struct GeneratorOptions {
  SyntheticKind kind = SyntheticKind::kCtr;
  int64_t rows = 100000;
  uint64_t seed = 1;
  int64_t vocab_size = 10000;  // distinct ids per categorical field
};

// Writes train.csv, validation.csv and test.csv (80/10/10 by row) under `dir` and returns their
// paths in that order. The bytes are a pure function of the options.
std::vector<std::string> GenerateData(const GeneratorOptions& options, const std::string& dir);

// Parses "ctr" | "seq" | "match" | "mtl"; throws UserError otherwise.
SyntheticKind ParseSyntheticKind(const std::string& name);

}  // namespace shardrec::data

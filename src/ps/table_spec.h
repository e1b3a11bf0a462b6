#pragma once
// What a PS needs to know about one embedding table: its shape, how a row is born, and how a
// row learns. Plain data, no heavy headers.
#include <cstdint>
#include <string>

namespace shardrec::ps {

struct InitSpec {
  enum class Kind { kNormal, kUniform, kZeros };
  Kind kind = Kind::kNormal;
  float mean = 0.f, std = 1e-4f;   // kNormal
  float low = -1e-4f, high = 1e-4f;  // kUniform
  uint64_t seed = 2022;
};

struct OptimizerSpec {
  enum class Kind { kAdam, kAdagrad, kSgd };
  Kind kind = Kind::kAdam;
  float lr = 1e-3f;
  float beta1 = 0.9f, beta2 = 0.999f;
  float eps = 1e-8f;
  float initial_accumulator = 0.f;
  float weight_decay = 0.f;
};

struct TableSpec {
  std::string name;
  int dim = 16;
  InitSpec init;
  OptimizerSpec optimizer;
};

}  // namespace shardrec::ps

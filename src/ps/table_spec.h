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
  // kRowwiseAdagrad: one accumulator per row (FBGEMM / TorchRec EXACT_ROWWISE_ADAGRAD).
  // kFtrl: FTRL-Proximal per coordinate (McMahan et al. 2013; TensorFlow's FtrlOptimizer).
  enum class Kind { kAdam, kAdagrad, kSgd, kRowwiseAdagrad, kFtrl };
  Kind kind = Kind::kAdam;
  float lr = 1e-3f;                  // FTRL: alpha
  float beta1 = 0.9f, beta2 = 0.999f;
  float eps = 1e-8f;
  float initial_accumulator = 0.f;   // Adagrad sums, row-wise accumulator, FTRL's n
  float weight_decay = 0.f;          // L2 added to the gradient of pushed rows
  // FTRL-Proximal: w = 0 where |z| <= l1, else -(z - sign(z) l1) / ((beta + n^-lr_power) / lr + 2 l2)
  // (TensorFlow's convention: l2 is the coefficient of l2 * w^2, hence 2 l2).
  float ftrl_beta = 0.f;
  float l1 = 0.f, l2 = 0.f;
  float lr_power = -0.5f;
};

struct TableSpec {
  std::string name;
  int dim = 16;
  InitSpec init;
  OptimizerSpec optimizer;
};

}  // namespace shardrec::ps

#pragma once
// Cross networks of the DCN family (DCN, DCN-V2, EDCN), after Torch-RecHub's basic/layers.py
// (CrossLayer, CrossNetwork, CrossNetV2, CrossNetMix). Each maps x0 [B, D] to x_L [B, D] through
// L residual layers that multiply the original input x0 element-wise with a function of the
// current x_l, so layer l holds feature crosses up to degree l + 1:
//
//   VectorCrossNet (DCN):           x_{l+1} = x0 * (x_l . w_l) + b_l + x_l          w_l, b_l: [D]
//   MatrixCrossNet (DCN-V2):        x_{l+1} = x0 (.) (W_l x_l + b_l) + x_l          W_l: [D, D]
//   LowRankMixtureCrossNet (DCN-V2, "CrossNetMix"), E experts of rank r:
//       p   = softmax_e(G x_l)                                     G: [E, D], shared by all layers
//       u_e = U_le tanh(C_le tanh(V_le^T x_l))                     U_le, V_le: [D, r]; C_le: [r, r]
//       x_{l+1} = sum_e p_e * x0 (.) (u_e + b_l) + x_l
//
// Differences from the reference, on purpose:
// - MatrixCrossNet adds b_l inside the product, x0 (.) (W_l x_l + b_l), as the DCN-V2 paper and
//   CrossNetMix do; the reference's CrossNetV2 adds it outside (x0 * W_l x_l + b_l + x_l).
// - LowRankMixtureCrossNet computes all experts with batched matrix products and uses
//   sum_e p_e = 1 to apply x0 and b_l once: x_{l+1} = x0 (.) (sum_e p_e u_e + b_l) + x_l, which is
//   the reference's mixture, exactly (no per-expert [B, D] outputs are materialised).
// Initialisation follows the reference: w_l and G as torch.nn.Linear(D, 1, bias=False) (uniform
// +-1/sqrt(D)), W_l as Linear(D, D, bias=False), U, V, C Xavier-normal, every b_l zero.
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace shardrec::models {

// Throws ConfigError("field FIELD: must be >= MIN, got VALUE"). The family's model constructors
// check their config values with it (config validation reports the same with FILE:LINE first).
void RequireAtLeast(int64_t value, int64_t min, const std::string& field);

// A stack of cross layers: [B, D] -> [B, D].
class CrossNet : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& x0) = 0;
  int64_t input_dim() const { return input_dim_; }
  int64_t num_layers() const { return num_layers_; }

 protected:
  // Throws ConfigError unless input_dim >= 1 and num_layers >= 1 (the models check their
  // config fields first, with the field's path).
  CrossNet(int64_t input_dim, int64_t num_layers);

  int64_t input_dim_;
  int64_t num_layers_;
};

// DCN's cross network. Parameters w<l>, b<l> ([D] each). EDCN interleaves its cross layers with
// other blocks and calls Layer() one at a time.
class VectorCrossNet : public CrossNet {
 public:
  VectorCrossNet(int64_t input_dim, int64_t num_layers);
  torch::Tensor forward(const torch::Tensor& x0) override;
  // Layer l: x0 * (xl . w_l) + b_l + xl.
  torch::Tensor Layer(int64_t l, const torch::Tensor& x0, const torch::Tensor& xl) const;

 private:
  std::vector<torch::Tensor> w_, b_;
};

// DCN-V2's full-rank cross network. Parameters w<l> ([D, D], applied as x_l W_l^T like a Linear
// weight) and b<l> ([D]).
class MatrixCrossNet : public CrossNet {
 public:
  MatrixCrossNet(int64_t input_dim, int64_t num_layers);
  torch::Tensor forward(const torch::Tensor& x0) override;

 private:
  std::vector<torch::Tensor> w_, b_;
};

// DCN-V2's mixture of low-rank experts (CrossNetMix). Parameters: gate [E, D] (row e is expert
// e's gating Linear(D, 1) weight, shared across layers as in the reference), and per layer
// u<l>, v<l> [E, D, r], c<l> [E, r, r], b<l> [D].
class LowRankMixtureCrossNet : public CrossNet {
 public:
  // Throws ConfigError unless low_rank >= 1 and num_experts >= 1.
  LowRankMixtureCrossNet(int64_t input_dim, int64_t num_layers, int64_t low_rank, int64_t num_experts);
  torch::Tensor forward(const torch::Tensor& x0) override;

  int64_t low_rank() const { return low_rank_; }
  int64_t num_experts() const { return num_experts_; }

 private:
  int64_t low_rank_, num_experts_;
  torch::Tensor gate_;
  std::vector<torch::Tensor> u_, v_, c_, b_;
};

}  // namespace shardrec::models

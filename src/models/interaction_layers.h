#pragma once
// Field-interaction layers of the AFM / FiBiNET family. Each takes field embeddings v [B, F, D]
// (Stack of a kStacked FeatureGroup) and treats all P = F (F - 1) / 2 pairs i < j at once: the
// pairs are two index vectors gathered with index_select, and shared or per-field weights are
// applied with one (batched) matmul, so forward has no loop over pairs. Per-pair weights
// (field_interaction) run as one GEMM per left field, F - 1 in all (see BilinearInteraction).
// Pairs are in itertools.combinations order, (0,1), (0,2), ..., (0,F-1), (1,2), ..., as in
// Torch-RecHub.
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>
#include <vector>

namespace shardrec::models {

// The pairs i < j of `num_fields` fields, in combinations order.
struct FieldPairs {
  torch::Tensor left;   // int64 [P]: i of each pair
  torch::Tensor right;  // int64 [P]: j of each pair
  int64_t size() const { return left.numel(); }
};
FieldPairs AllFieldPairs(int64_t num_fields);

// ---------------------------------------------------------------------------------------------
// AFM: attention-based pooling of the pairwise interactions

struct AttentionalPoolingOptions {
  int64_t num_fields = 0;
  int64_t embed_dim = 0;
  std::vector<int64_t> attention_units = {64};  // hidden widths; the paper's t is one layer
  double dropout = 0;                           // on the pooled vector, training only
};

// The second-order term of AFM (Xiao et al., IJCAI 2017, eqs. 3-5) over v [B, F, D]:
//   e_ij = v_i (.) v_j                                                  [B, P, D]
//   s_ij = h^T ReLU(W_k ... ReLU(W_1 e_ij + b_1) ... + b_k)             [B, P]
//   a_ij = softmax of s over all pairs i < j (per row)                  [B, P]
//   out  = p^T Dropout(sum_ij a_ij e_ij)                                [B, 1]
// With one attention layer this is the paper's attention network, run on all B * P pair vectors
// as one matrix. Cost: the [B * P, t] hidden activations (666k x 64 floats at batch 2048 over 26
// fields) dominate a step; that is AFM's price for per-pair attention. Parameters: attention<k>
// (torch Linear init, as the reference's nn.Linear), h [t_k, 1] and p [D, 1] (Xavier uniform, as
// the reference). Throws std::invalid_argument for F < 2, D < 1, a width < 1 or dropout outside
// [0, 1) (models validate their config with field paths first).
class AttentionalPoolingImpl : public torch::nn::Module {
 public:
  explicit AttentionalPoolingImpl(AttentionalPoolingOptions options);
  torch::Tensor forward(const torch::Tensor& v);  // [B, 1]

  // The attention weights a [B, P] of `v` (what forward pools with; a transposed view).
  torch::Tensor attention(const torch::Tensor& v);

  const FieldPairs& pairs() const { return pairs_; }
  const AttentionalPoolingOptions& options() const { return options_; }

  torch::Tensor h;  // [t_k, 1]
  torch::Tensor p;  // [D, 1]

 private:
  torch::Tensor PairProducts(const torch::Tensor& v) const;  // e, pair-major [P, B, D]
  torch::Tensor Softmax(const torch::Tensor& products);       // a [P, B], from e [P, B, D]

  AttentionalPoolingOptions options_;
  FieldPairs pairs_;
  std::vector<torch::nn::Linear> attention_;
};
TORCH_MODULE(AttentionalPooling);

// ---------------------------------------------------------------------------------------------
// FiBiNET: SENET field reweighting and bilinear interactions

// SENET (Huang et al., RecSys 2019, section 3.3), as the reference SENETLayer, over v [B, F, D]:
//   z = mean of v over D                         [B, F]   (squeeze)
//   a = ReLU(W2 ReLU(W1 z))                       [B, F]   (excitation; W1 [R, F], W2 [F, R], no bias)
//   out = v * a (each field scaled by its weight) [B, F, D] (re-weight)
// with R = max(1, floor(F / reduction_ratio)). Submodules: squeeze, excite.
class SenetImpl : public torch::nn::Module {
 public:
  SenetImpl(int64_t num_fields, int64_t reduction_ratio);
  torch::Tensor forward(const torch::Tensor& v);

  // The field weights a [B, F].
  torch::Tensor weights(const torch::Tensor& v);
  int64_t reduced_size() const { return reduced_size_; }

  torch::nn::Linear squeeze{nullptr}, excite{nullptr};

 private:
  int64_t reduced_size_;
};
TORCH_MODULE(Senet);

enum class BilinearType {
  kFieldAll,          // one W shared by every pair
  kFieldEach,         // W_i per left field i
  kFieldInteraction,  // W_ij per pair
};

// "field_all" | "field_each" | "field_interaction" (the reference's names). Throws ConfigError
// naming `field` for anything else.
BilinearType ParseBilinearType(const std::string& name, const std::string& field);
const char* BilinearTypeName(BilinearType type);

// Bilinear interaction (FiBiNET section 3.4), as the reference BiLinearInteractionLayer:
//   p_ij = (W v_i) (.) v_j  for every pair i < j     -> [B, P, D]
// where W is shared (field_all), W_i (field_each) or W_ij (field_interaction); W v is the
// reference's bias-free nn.Linear (v W^T), with its init U(-1/sqrt(D), 1/sqrt(D)).
// Parameter `weight`: [D, D], [F-1, D, D] (the last field is never a left side) or [P, D, D],
// each matrix laid out [out, in] like nn.Linear.weight. field_all and field_each transform each
// field once and gather the pairs; field_interaction stacks the W_ij of each left field i and
// multiplies v_i by them in one GEMM ([B, D] x [D, (F-1-i) D]), F - 1 GEMMs in all: LibTorch's
// CPU bmm over the P pairs runs P tiny GEMMs, each with its own dispatch, several times slower.
// The output is contiguous.
class BilinearInteractionImpl : public torch::nn::Module {
 public:
  BilinearInteractionImpl(int64_t num_fields, int64_t embed_dim, BilinearType type);
  torch::Tensor forward(const torch::Tensor& v);

  BilinearType type() const { return type_; }
  const FieldPairs& pairs() const { return pairs_; }

  torch::Tensor weight;

 private:
  torch::Tensor PairsByLeftField(const torch::Tensor& v) const;  // field_interaction

  BilinearType type_;
  int64_t num_fields_;
  FieldPairs pairs_;
};
TORCH_MODULE(BilinearInteraction);

}  // namespace shardrec::models

#pragma once
// The recurrent layers of DIEN (Zhou et al., AAAI 2019), as Torch-RecHub's
// models/ranking/dien.py computes them, for padded behaviour sequences:
//
//   MaskedGRU          the interest extractor: a standard GRU (torch.nn.GRU's gates) over the
//                      real steps of each row. Its state holds still at padded steps, so a
//                      right-aligned (pre-padded) history starts from zero at its first real step,
//                      exactly like the reference's packed sequence.
//   AttentionalGRUCell one step of the interest evolution GRU, gated by an attention weight a:
//                        u = sigmoid(x W_u + h U_u + b_u)          (not for AGRU)
//                        r = sigmoid(x W_r + h U_r + b_r)
//                        h~ = tanh(x W_h + r * (h U_h) + b_h)
//                      AUGRU (the reference): h' = (1 - a u) h + a u h~
//                      AIGRU: the same GRU on the scaled input a x: h' = (1 - u) h + u h~
//                      AGRU:  the update gate is a itself: h' = (1 - a) h + a h~
//                      The hidden side has no bias, as in the reference cell.
//   InterestEvolution  target attention a_t = softmax over the real steps t of (h_t W_a) . target,
//                      then the attentional GRU from a zero state over the sequence; returns the
//                      final state.
//
// Efficiency: the input side of every gate is projected for all steps with one matmul; each step
// is then one [B, H] x [H, G H] matmul and a few elementwise ops over the whole batch. Rows never
// loop.
//
// Differences from the reference: a row without any real step is handled in the batch (its
// states stay zero) instead of being filtered out; the evolution cell's biases start at zero (the
// reference draws its [1, H] biases with xavier_uniform like its weights). AIGRU and AGRU are the
// paper's variants; the reference implements only AUGRU.
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cstdint>

namespace shardrec::models {

// ---------------------------------------------------------------------------------------------
// Interest extractor

// torch.nn.GRU's cell: r = sigmoid(W_ir x + b_ir + W_hr h + b_hr), z = sigmoid(... z ...),
// n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) n + z h; parameters in torch's
// layout and initialisation (U(-1/sqrt(H), 1/sqrt(H))).
class MaskedGRUImpl : public torch::nn::Module {
 public:
  MaskedGRUImpl(int64_t input_dim, int64_t hidden_dim);

  // x [B, L, input_dim], mask [B, L] bool (true at real steps) -> states [B, L, H]: state t is
  // the GRU state after the real steps up to and including t (zero before the first real step).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask);

  int64_t hidden_dim() const { return hidden_dim_; }

  torch::Tensor weight_ih;  // [3H, input_dim], gate rows [r; z; n]
  torch::Tensor weight_hh;  // [3H, H]
  torch::Tensor bias_ih;    // [3H]
  torch::Tensor bias_hh;    // [3H]

 private:
  int64_t hidden_dim_;
};
TORCH_MODULE(MaskedGRU);

// ---------------------------------------------------------------------------------------------
// Interest evolution

enum class AttentionalGruKind { kAugru, kAigru, kAgru };

class AttentionalGRUCellImpl : public torch::nn::Module {
 public:
  AttentionalGRUCellImpl(AttentionalGruKind kind, int64_t input_dim, int64_t hidden_dim);

  // The input side of the gates, for any number of steps at once: x [..., input_dim] ->
  // [..., G H] (G = 3 gates, 2 for AGRU). Includes the bias, except for AIGRU, whose bias is added
  // in Step after the attention has scaled x W.
  torch::Tensor ProjectInput(const torch::Tensor& x) const;

  // W_hh^T as a contiguous [H, G H] matrix for Step; made once per sequence, since mm on it runs
  // ~3x faster than on the transposed view.
  torch::Tensor RecurrentWeight() const;

  // One step: xw [B, G H] from ProjectInput, state h [B, H], attention a [B, 1], `recurrent` from
  // RecurrentWeight() -> next state. AUGRU and AGRU keep h exactly where a = 0. AIGRU's update
  // gate does not close on a zero input: `real` [B, 1] (1 at real steps, 0 at padding) closes it.
  torch::Tensor Step(const torch::Tensor& xw, const torch::Tensor& h, const torch::Tensor& a,
                     const torch::Tensor& recurrent, const torch::Tensor& real = {}) const;

  // Step(ProjectInput(x), h, a) for a single step x [B, input_dim].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& h, const torch::Tensor& a);

  AttentionalGruKind kind() const { return kind_; }
  int64_t hidden_dim() const { return hidden_dim_; }
  int64_t num_gates() const { return kind_ == AttentionalGruKind::kAgru ? 2 : 3; }

  // Gate blocks of H rows each: [u; r; h~] (AGRU: [r; h~]).
  torch::Tensor weight_ih;  // [G H, input_dim]: W
  torch::Tensor weight_hh;  // [G H, H]: U
  torch::Tensor bias;       // [G H]: b

 private:
  AttentionalGruKind kind_;
  int64_t hidden_dim_;
};
TORCH_MODULE(AttentionalGRUCell);

class InterestEvolutionImpl : public torch::nn::Module {
 public:
  InterestEvolutionImpl(AttentionalGruKind kind, int64_t interest_dim, int64_t target_dim);

  // a [B, L]: softmax over the real steps of (h_t W_a) . target, zero at padded steps and in rows
  // without a real step. interests [B, L, H], mask [B, L] bool, target [B, target_dim].
  torch::Tensor Attention(const torch::Tensor& interests, const torch::Tensor& mask,
                          const torch::Tensor& target) const;

  // The final evolved state [B, H] (zero for rows without a real step).
  torch::Tensor forward(const torch::Tensor& interests, const torch::Tensor& mask, const torch::Tensor& target);

  torch::Tensor attention_weight;  // W_a [H, target_dim]
  AttentionalGRUCell cell{nullptr};
};
TORCH_MODULE(InterestEvolution);

}  // namespace shardrec::models

#include "models/interest_gru.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <vector>

namespace shardrec::models {

// ---------------------------------------------------------------------------------------------
// MaskedGRU

MaskedGRUImpl::MaskedGRUImpl(int64_t input_dim, int64_t hidden_dim) : hidden_dim_(hidden_dim) {
  TORCH_CHECK(input_dim > 0 && hidden_dim > 0, "MaskedGRU needs positive dims, got ", input_dim, ", ", hidden_dim);
  const double bound = 1.0 / std::sqrt(static_cast<double>(hidden_dim));
  weight_ih = register_parameter("weight_ih", torch::empty({3 * hidden_dim, input_dim}).uniform_(-bound, bound));
  weight_hh = register_parameter("weight_hh", torch::empty({3 * hidden_dim, hidden_dim}).uniform_(-bound, bound));
  bias_ih = register_parameter("bias_ih", torch::empty({3 * hidden_dim}).uniform_(-bound, bound));
  bias_hh = register_parameter("bias_hh", torch::empty({3 * hidden_dim}).uniform_(-bound, bound));
}

torch::Tensor MaskedGRUImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  TORCH_CHECK(x.dim() == 3 && mask.sizes() == x.sizes().slice(0, 2), "MaskedGRU: x [B, L, D] and mask [B, L] expected");
  const int64_t H = hidden_dim_, L = x.size(1);
  // Input side of all gates for all steps, time-major. unbind (not xw[t]) so that backward
  // assembles the gradient of xw once instead of once per step.
  std::vector<torch::Tensor> inputs = torch::linear(x.transpose(0, 1), weight_ih, bias_ih).unbind(0);  // L x [B, 3H]
  std::vector<torch::Tensor> real = mask.t().unsqueeze(2).to(x.scalar_type()).unbind(0);             // L x [B, 1]
  const torch::Tensor recurrent = weight_hh.t().contiguous();  // [H, 3H]: mm runs ~3x faster than on W^T's view
  torch::Tensor h = torch::zeros({x.size(0), H}, x.options());
  std::vector<torch::Tensor> states;
  states.reserve(static_cast<size_t>(L));
  for (int64_t t = 0; t < L; ++t) {
    std::vector<torch::Tensor> in = inputs[t].split({2 * H, H}, 1);
    std::vector<torch::Tensor> hw = torch::addmm(bias_hh, h, recurrent).split({2 * H, H}, 1);
    std::vector<torch::Tensor> rz = torch::sigmoid(in[0] + hw[0]).chunk(2, 1);
    torch::Tensor n = torch::tanh(in[1] + rz[0] * hw[1]);
    // (1 - z) n + z h == h + (1 - z)(n - h); the update (1 - z) is zeroed at padded steps, which
    // then keep h exactly.
    h = torch::lerp(h, n, (1 - rz[1]) * real[t]);
    states.push_back(h);
  }
  return torch::stack(states, 1);
}

// ---------------------------------------------------------------------------------------------
// AttentionalGRUCell

AttentionalGRUCellImpl::AttentionalGRUCellImpl(AttentionalGruKind kind, int64_t input_dim, int64_t hidden_dim)
    : kind_(kind), hidden_dim_(hidden_dim) {
  TORCH_CHECK(input_dim > 0 && hidden_dim > 0, "AttentionalGRUCell needs positive dims, got ", input_dim, ", ",
              hidden_dim);
  const int64_t G = num_gates();
  weight_ih = register_parameter("weight_ih", torch::empty({G * hidden_dim, input_dim}));
  weight_hh = register_parameter("weight_hh", torch::empty({G * hidden_dim, hidden_dim}));
  bias = register_parameter("bias", torch::zeros({G * hidden_dim}));
  // xavier_uniform per gate block, as the reference initialises each of its W_g, U_g.
  torch::NoGradGuard no_grad;
  for (int64_t g = 0; g < G; ++g) {
    torch::nn::init::xavier_uniform_(weight_ih.narrow(0, g * hidden_dim, hidden_dim));
    torch::nn::init::xavier_uniform_(weight_hh.narrow(0, g * hidden_dim, hidden_dim));
  }
}

torch::Tensor AttentionalGRUCellImpl::ProjectInput(const torch::Tensor& x) const {
  // AIGRU scales x before the projection: (a x) W + b = a (x W) + b, so the bias waits for Step.
  return kind_ == AttentionalGruKind::kAigru ? torch::matmul(x, weight_ih.t()) : torch::linear(x, weight_ih, bias);
}

torch::Tensor AttentionalGRUCellImpl::RecurrentWeight() const { return weight_hh.t().contiguous(); }

torch::Tensor AttentionalGRUCellImpl::Step(const torch::Tensor& xw, const torch::Tensor& h, const torch::Tensor& a,
                                           const torch::Tensor& recurrent, const torch::Tensor& real) const {
  const int64_t H = hidden_dim_;
  torch::Tensor hu = torch::mm(h, recurrent);  // [B, G H]
  if (kind_ == AttentionalGruKind::kAgru) {
    std::vector<torch::Tensor> in = xw.chunk(2, 1), hid = hu.chunk(2, 1);
    torch::Tensor r = torch::sigmoid(in[0] + hid[0]);
    torch::Tensor candidate = torch::tanh(in[1] + r * hid[1]);
    return torch::lerp(h, candidate, a);  // (1 - a) h + a h~
  }
  torch::Tensor x = kind_ == AttentionalGruKind::kAigru ? torch::addcmul(bias, xw, a) : xw;
  std::vector<torch::Tensor> in = x.split({2 * H, H}, 1), hid = hu.split({2 * H, H}, 1);
  std::vector<torch::Tensor> ur = torch::sigmoid(in[0] + hid[0]).chunk(2, 1);
  torch::Tensor candidate = torch::tanh(in[1] + ur[1] * hid[1]);
  torch::Tensor update = ur[0];
  if (kind_ == AttentionalGruKind::kAugru) update = a * update;
  if (kind_ == AttentionalGruKind::kAigru && real.defined()) update = real * update;
  return torch::lerp(h, candidate, update);  // (1 - u) h + u h~
}

torch::Tensor AttentionalGRUCellImpl::forward(const torch::Tensor& x, const torch::Tensor& h, const torch::Tensor& a) {
  return Step(ProjectInput(x), h, a, RecurrentWeight());
}

// ---------------------------------------------------------------------------------------------
// InterestEvolution

InterestEvolutionImpl::InterestEvolutionImpl(AttentionalGruKind kind, int64_t interest_dim, int64_t target_dim) {
  attention_weight = register_parameter("attention_weight", torch::empty({interest_dim, target_dim}));
  {
    torch::NoGradGuard no_grad;
    torch::nn::init::xavier_uniform_(attention_weight);
  }
  cell = register_module("cell", AttentionalGRUCell(kind, interest_dim, interest_dim));
}

torch::Tensor InterestEvolutionImpl::Attention(const torch::Tensor& interests, const torch::Tensor& mask,
                                               const torch::Tensor& target) const {
  // (h_t W_a) . e == h_t . (W_a e): project the one target instead of the L interests.
  torch::Tensor query = torch::linear(target, attention_weight);                 // [B, H]
  torch::Tensor scores = torch::bmm(interests, query.unsqueeze(2)).squeeze(2);  // [B, L]
  torch::Tensor padded = mask.logical_not();
  // The lowest float (not -inf) keeps rows without a real step finite; they are zeroed after.
  const double lowest = std::numeric_limits<float>::lowest();
  return torch::softmax(scores.masked_fill(padded, lowest), 1).masked_fill(padded, 0);
}

torch::Tensor InterestEvolutionImpl::forward(const torch::Tensor& interests, const torch::Tensor& mask,
                                             const torch::Tensor& target) {
  const int64_t L = interests.size(1);
  // Time-major per-step views; unbind keeps backward to one gradient assembly per tensor.
  std::vector<torch::Tensor> a = Attention(interests, mask, target).t().unsqueeze(2).unbind(0);  // L x [B, 1]
  std::vector<torch::Tensor> inputs = cell->ProjectInput(interests.transpose(0, 1)).unbind(0);  // L x [B, G H]
  // AUGRU and AGRU hold their state at padded steps by themselves (a = 0 closes the update gate);
  // AIGRU's gates do not close on a zero input, so it is told which steps are real.
  std::vector<torch::Tensor> real;
  if (cell->kind() == AttentionalGruKind::kAigru) real = mask.t().unsqueeze(2).to(interests.scalar_type()).unbind(0);
  const torch::Tensor recurrent = cell->RecurrentWeight();
  torch::Tensor h = torch::zeros({interests.size(0), cell->hidden_dim()}, interests.options());
  for (int64_t t = 0; t < L; ++t) {
    h = cell->Step(inputs[t], h, a[t], recurrent, real.empty() ? torch::Tensor() : real[t]);
  }
  return h;
}

}  // namespace shardrec::models

#include "models/cross_layers.h"

#include <torch/nn/init.h>
#include <torch/torch.h>

#include <cmath>
#include <string>

#include "common/error.h"

namespace shardrec::models {
namespace {

// torch.nn.Linear's default weight init: kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(fan_in), +).
torch::Tensor LinearWeightInit(std::vector<int64_t> shape, int64_t fan_in) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  return torch::empty(shape).uniform_(-bound, bound);
}

}  // namespace

void RequireAtLeast(int64_t value, int64_t min, const std::string& field) {
  if (value < min) {
    throw ConfigError("field " + field + ": must be >= " + std::to_string(min) + ", got " + std::to_string(value));
  }
}

CrossNet::CrossNet(int64_t input_dim, int64_t num_layers) : input_dim_(input_dim), num_layers_(num_layers) {
  if (input_dim < 1 || num_layers < 1) {
    throw ConfigError("cross network: needs input width >= 1 and layers >= 1, got " + std::to_string(input_dim) +
                      " and " + std::to_string(num_layers));
  }
}

// ---------------------------------------------------------------------------------------------
// VectorCrossNet

VectorCrossNet::VectorCrossNet(int64_t input_dim, int64_t num_layers) : CrossNet(input_dim, num_layers) {
  for (int64_t l = 0; l < num_layers; ++l) {
    const std::string n = std::to_string(l);
    w_.push_back(register_parameter("w" + n, LinearWeightInit({input_dim}, input_dim)));
    b_.push_back(register_parameter("b" + n, torch::zeros({input_dim})));
  }
}

torch::Tensor VectorCrossNet::Layer(int64_t l, const torch::Tensor& x0, const torch::Tensor& xl) const {
  // x_l . w_l is one scalar per row: a matrix-vector product, no [D, D] work.
  torch::Tensor scale = xl.matmul(w_[l]).unsqueeze(1);  // [B, 1]
  return (xl + b_[l]).addcmul_(x0, scale);
}

torch::Tensor VectorCrossNet::forward(const torch::Tensor& x0) {
  torch::Tensor x = x0;
  for (int64_t l = 0; l < num_layers_; ++l) x = Layer(l, x0, x);
  return x;
}

// ---------------------------------------------------------------------------------------------
// MatrixCrossNet

MatrixCrossNet::MatrixCrossNet(int64_t input_dim, int64_t num_layers) : CrossNet(input_dim, num_layers) {
  for (int64_t l = 0; l < num_layers; ++l) {
    const std::string n = std::to_string(l);
    w_.push_back(register_parameter("w" + n, LinearWeightInit({input_dim, input_dim}, input_dim)));
    b_.push_back(register_parameter("b" + n, torch::zeros({input_dim})));
  }
}

torch::Tensor MatrixCrossNet::forward(const torch::Tensor& x0) {
  torch::Tensor x = x0;
  for (int64_t l = 0; l < num_layers_; ++l) {
    x = torch::addcmul(x, x0, torch::addmm(b_[l], x, w_[l].t()));  // x + x0 (.) (x W^T + b)
  }
  return x;
}

// ---------------------------------------------------------------------------------------------
// LowRankMixtureCrossNet

LowRankMixtureCrossNet::LowRankMixtureCrossNet(int64_t input_dim, int64_t num_layers, int64_t low_rank,
                                               int64_t num_experts)
    : CrossNet(input_dim, num_layers), low_rank_(low_rank), num_experts_(num_experts) {
  if (low_rank < 1 || num_experts < 1) {
    throw ConfigError("low-rank mixture cross network: needs rank >= 1 and experts >= 1, got " +
                      std::to_string(low_rank) + " and " + std::to_string(num_experts));
  }
  gate_ = register_parameter("gate", LinearWeightInit({num_experts, input_dim}, input_dim));
  for (int64_t l = 0; l < num_layers; ++l) {
    const std::string n = std::to_string(l);
    // Xavier on the 3-d [E, D, r] tensor, as the reference initialises it (fans D*r and E*r).
    u_.push_back(register_parameter("u" + n, torch::nn::init::xavier_normal_(torch::empty({num_experts, input_dim, low_rank}))));
    v_.push_back(register_parameter("v" + n, torch::nn::init::xavier_normal_(torch::empty({num_experts, input_dim, low_rank}))));
    c_.push_back(register_parameter("c" + n, torch::nn::init::xavier_normal_(torch::empty({num_experts, low_rank, low_rank}))));
    b_.push_back(register_parameter("b" + n, torch::zeros({input_dim})));
  }
}

torch::Tensor LowRankMixtureCrossNet::forward(const torch::Tensor& x0) {
  const int64_t batch = x0.size(0), experts = num_experts_, rank = low_rank_, dim = input_dim_;
  torch::Tensor x = x0;
  for (int64_t l = 0; l < num_layers_; ++l) {
    torch::Tensor p = torch::softmax(x.matmul(gate_.t()), 1);  // [B, E]
    // Every expert's V^T x in one product: V as [D, E*r], expert-major columns.
    torch::Tensor h = torch::tanh(x.matmul(v_[l].permute({1, 0, 2}).reshape({dim, experts * rank})));
    h = h.view({batch, experts, rank}).transpose(0, 1);  // [E, B, r]
    h = torch::tanh(torch::bmm(h, c_[l].transpose(1, 2)));  // rows (C_e h_e)^T
    // sum_e p_e U_e h_e = [p_1 h_1, ..., p_E h_E] [U_1^T; ...; U_E^T]: one product for all experts.
    h = (h * p.t().unsqueeze(2)).transpose(0, 1).reshape({batch, experts * rank});
    torch::Tensor mixed = torch::addmm(b_[l], h, u_[l].transpose(1, 2).reshape({experts * rank, dim}));  // + b_l
    x = torch::addcmul(x, x0, mixed);
  }
  return x;
}

}  // namespace shardrec::models

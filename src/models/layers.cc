#include "models/layers.h"

#include <string>
#include <utility>

#include "common/error.h"
#include "models/dropout.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {

// ---------------------------------------------------------------------------------------------
// Activations

DiceImpl::DiceImpl(double eps) : eps_(eps) { alpha = register_parameter("alpha", torch::randn({1})); }

torch::Tensor DiceImpl::forward(const torch::Tensor& x) {
  const int64_t n = x.size(-1);
  torch::Tensor centered = x - x.mean(-1, /*keepdim=*/true);
  // sum((x - mean)^2 + eps) == sum((x - mean)^2) + n * eps.
  torch::Tensor inv_std = centered.square().sum(-1, /*keepdim=*/true).add_(eps_ * n).rsqrt_();
  torch::Tensor p = torch::sigmoid(centered * inv_std);
  // p * x + (1 - p) * alpha * x == x * (alpha + p * (1 - alpha)).
  return x * p.mul(1 - alpha).add_(alpha);
}

ActivationImpl::ActivationImpl(ActivationKind kind) : kind_(kind) {
  if (kind_ == ActivationKind::kPrelu) {
    prelu_ = register_module("prelu", torch::nn::PReLU(torch::nn::PReLUOptions().num_parameters(1).init(0.25)));
  } else if (kind_ == ActivationKind::kDice) {
    dice_ = register_module("dice", Dice());
  }
}

torch::Tensor ActivationImpl::forward(const torch::Tensor& x) {
  switch (kind_) {
    case ActivationKind::kRelu:
      return torch::relu(x);
    case ActivationKind::kPrelu:
      return prelu_->forward(x);
    case ActivationKind::kSigmoid:
      return torch::sigmoid(x);
    case ActivationKind::kLeakyRelu:
      return torch::leaky_relu(x, 0.01);
    case ActivationKind::kDice:
      return dice_->forward(x);
    case ActivationKind::kTanh:
      return torch::tanh(x);
  }
  TORCH_CHECK(false, "unknown activation kind ", static_cast<int>(kind_));
}

torch::Tensor ActivationImpl::forward_(torch::Tensor x) {
  switch (kind_) {
    case ActivationKind::kRelu:
      return x.relu_();
    case ActivationKind::kSigmoid:
      return x.sigmoid_();
    case ActivationKind::kLeakyRelu:
      return torch::leaky_relu_(x, 0.01);
    case ActivationKind::kTanh:
      return x.tanh_();
    default:
      return forward(x);
  }
}

// ---------------------------------------------------------------------------------------------
// MLP

namespace {

ActivationKind ToActivationKind(config::Activation a) {
  switch (a) {
    case config::RELU:
      return ActivationKind::kRelu;
    case config::PRELU:
      return ActivationKind::kPrelu;
    case config::SIGMOID:
      return ActivationKind::kSigmoid;
    case config::LEAKYRELU:
      return ActivationKind::kLeakyRelu;
    case config::DICE:
      return ActivationKind::kDice;
    case config::TANH:
      return ActivationKind::kTanh;
  }
  throw ConfigError("field mlp.activation: unknown activation " + std::to_string(static_cast<int>(a)));
}

void CheckMlpOptions(int64_t input_dim, const MlpOptions& o) {
  if (input_dim <= 0) throw ConfigError("mlp: input dimension must be positive, got " + std::to_string(input_dim));
  for (size_t i = 0; i < o.dims.size(); ++i) {
    if (o.dims[i] <= 0) {
      throw ConfigError("field mlp.dims: dims[" + std::to_string(i) + "] must be positive, got " +
                        std::to_string(o.dims[i]));
    }
  }
  if (!o.dropout_rates.empty() && o.dropout_rates.size() != o.dims.size()) {
    throw ConfigError("field mlp.dropout_rates: " + std::to_string(o.dropout_rates.size()) +
                      " rates for " + std::to_string(o.dims.size()) + " layers (give one per layer)");
  }
  for (size_t i = 0; i < o.dims.size(); ++i) {
    const double p = o.DropoutOf(i);
    if (!(p >= 0 && p <= 1)) {
      throw ConfigError("field mlp.dropout: rate of layer " + std::to_string(i) + " must be in [0, 1], got " +
                        std::to_string(p));
    }
  }
}

}  // namespace

MlpOptions MlpOptionsFromConfig(const config::Mlp& config, const std::vector<int64_t>& default_dims,
                                bool output_layer) {
  MlpOptions o;
  o.dims.assign(config.dims().begin(), config.dims().end());
  if (o.dims.empty()) o.dims = default_dims;
  o.dropout = config.dropout();
  o.dropout_rates.assign(config.dropout_rates().begin(), config.dropout_rates().end());
  o.activation = ToActivationKind(config.activation());
  o.output_layer = output_layer;
  o.batch_norm = config.batch_norm();
  return o;
}

MLPImpl::MLPImpl(int64_t input_dim, MlpOptions options)
    : input_dim_(input_dim), output_dim_(input_dim), options_(std::move(options)) {
  CheckMlpOptions(input_dim_, options_);
  hidden_.reserve(options_.dims.size());
  for (size_t i = 0; i < options_.dims.size(); ++i) {
    const std::string n = std::to_string(i);
    const int64_t width = options_.dims[i];
    Hidden h;
    h.linear = register_module("linear" + n, torch::nn::Linear(output_dim_, width));
    if (options_.batch_norm) h.bn = register_module("bn" + n, torch::nn::BatchNorm1d(width));
    h.act = register_module("act" + n, Activation(options_.activation));
    h.dropout = options_.DropoutOf(i);
    hidden_.push_back(std::move(h));
    output_dim_ = width;
  }
  if (options_.output_layer) {
    out_ = register_module("out", torch::nn::Linear(output_dim_, 1));
    output_dim_ = 1;
  }
}

torch::Tensor MLPImpl::forward(torch::Tensor x) {
  const bool train = is_training();
  for (Hidden& h : hidden_) {
    // The batch-norm output is a fresh tensor that nothing else holds, so the activation may work
    // in place (batch norm's backward needs its input, not its output).
    x = h.linear->forward(x);
    x = h.act->forward_(h.bn ? h.bn->forward(x) : x);
    // Out of place: relu, sigmoid and tanh keep their output for the backward pass.
    if (train && h.dropout > 0) x = Dropout(x, h.dropout);
  }
  if (out_) x = out_->forward(x);
  return x;
}

// ---------------------------------------------------------------------------------------------
// LR, FM

LRImpl::LRImpl(int64_t input_dim, bool bias) {
  fc = register_module("fc", torch::nn::Linear(torch::nn::LinearOptions(input_dim, 1).bias(bias)));
}

torch::Tensor LRImpl::forward(const torch::Tensor& x) { return fc->forward(x); }

torch::Tensor FMImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 3, "FM expects field embeddings [B, F, D], got ", x.sizes());
  torch::Tensor square_of_sum = x.sum(1).square();
  torch::Tensor ix = square_of_sum.sub_(x.square().sum(1));  // [B, D]
  if (reduce_sum_) ix = ix.sum(1, /*keepdim=*/true);
  return ix.mul_(0.5);
}

}  // namespace shardrec::models

#include "models/multitask_layers.h"

#include <torch/torch.h>

#include <cmath>
#include <utility>

#include "common/error.h"
#include "models/dropout.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {

// ---------------------------------------------------------------------------------------------
// Experts

ExpertActivationImpl::ExpertActivationImpl(ActivationKind kind, int64_t num_experts) : kind_(kind) {
  if (kind_ == ActivationKind::kPrelu) {
    prelu_weight = register_parameter("prelu_weight", torch::full({num_experts}, 0.25));
  } else if (kind_ == ActivationKind::kDice) {
    for (int64_t e = 0; e < num_experts; ++e) dice_.push_back(register_module("dice" + std::to_string(e), Dice()));
  } else {
    elementwise_ = Activation(kind_);  // no parameters, nothing to register
  }
}

torch::Tensor ExpertActivationImpl::forward_(torch::Tensor x) {
  switch (kind_) {
    case ActivationKind::kPrelu:
      return torch::prelu(x, prelu_weight);  // dimension 1 (the experts) holds the channels
    case ActivationKind::kDice: {
      std::vector<torch::Tensor> out;
      out.reserve(dice_.size());
      for (size_t e = 0; e < dice_.size(); ++e) out.push_back(dice_[e]->forward(x.select(1, static_cast<int64_t>(e))));
      return torch::stack(out, 1);
    }
    default:
      return elementwise_->forward_(std::move(x));
  }
}

ExpertGroupImpl::ExpertGroupImpl(int64_t input_dim, int64_t num_experts, MlpOptions options, const std::string& field)
    : num_experts_(num_experts), options_(std::move(options)) {
  if (num_experts_ < 1) throw ConfigError("field " + field + ": needs at least one expert, got " + std::to_string(num_experts_));
  if (input_dim <= 0) throw ConfigError("field " + field + ": the experts' input is empty");
  if (options_.dims.empty()) throw ConfigError("field " + field + ".dims: an expert needs at least one hidden layer");
  if (!options_.dropout_rates.empty() && options_.dropout_rates.size() != options_.dims.size())
    throw ConfigError("field " + field + ".dropout_rates: needs one rate per hidden layer (" + std::to_string(options_.dims.size()) + ")");
  options_.output_layer = false;
  const int64_t e = num_experts_;
  int64_t prev = input_dim;
  for (size_t l = 0; l < options_.dims.size(); ++l) {
    const std::string n = std::to_string(l);
    Layer layer;
    layer.width = options_.dims[l];
    layer.dropout = options_.DropoutOf(l);
    if (layer.width <= 0) throw ConfigError("field " + field + ".dims: dims[" + n + "] must be positive");
    if (!(layer.dropout >= 0 && layer.dropout <= 1)) throw ConfigError("field " + field + ".dropout: must be in [0, 1]");
    if (l == 0) {
      layer.linear = register_module("linear0", torch::nn::Linear(prev, e * layer.width));
    } else {
      // torch's Linear initialisation, per expert: weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
      const double bound = 1.0 / std::sqrt(static_cast<double>(prev));
      layer.weight = register_parameter("weight" + n, torch::empty({e, layer.width, prev}).uniform_(-bound, bound));
      layer.bias = register_parameter("bias" + n, torch::empty({e, layer.width}).uniform_(-bound, bound));
    }
    layer.bn = register_module("bn" + n, torch::nn::BatchNorm1d(e * layer.width));
    layer.act = register_module("act" + n, ExpertActivation(options_.activation, e));
    layers_.push_back(std::move(layer));
    prev = options_.dims[l];
  }
}

torch::Tensor ExpertGroupImpl::forward(const torch::Tensor& x) {
  const int64_t b = x.size(0), e = num_experts_;
  const bool train = is_training();
  torch::Tensor h;  // [B, E * width]: expert e at columns e*width .. (e+1)*width - 1
  int64_t prev = 0;
  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer& layer = layers_[l];
    if (l == 0) {
      h = layer.linear->forward(x);
    } else {
      torch::Tensor per_expert = h.view({b, e, prev}).transpose(0, 1);  // [E, B, prev]
      h = torch::baddbmm(layer.bias.unsqueeze(1), per_expert, layer.weight.transpose(1, 2))  // [E, B, width]
              .transpose(0, 1)
              .reshape({b, e * layer.width});
    }
    h = layer.act->forward_(layer.bn->forward(h).view({b, e, layer.width}));
    if (train && layer.dropout > 0) h = Dropout(h, layer.dropout);
    h = h.reshape({b, e * layer.width});
    prev = layer.width;
  }
  return h.view({b, e, prev});
}

torch::Tensor ExpertGroupImpl::last_weight() const {
  return layers_.size() == 1 ? layers_[0].linear->weight : layers_.back().weight;
}

// ---------------------------------------------------------------------------------------------
// Gates

GateOptions GateOptionsFromConfig(const config::MultiTaskGate& config) {
  GateOptions o;
  o.softmax = config.activation() == config::MultiTaskGate::SOFTMAX;
  o.batch_norm = config.batch_norm();
  return o;
}

GateImpl::GateImpl(int64_t input_dim, int64_t num_gates, int64_t num_experts, GateOptions options)
    : num_gates_(num_gates), num_experts_(num_experts), options_(options) {
  TORCH_CHECK(input_dim > 0 && num_gates > 0 && num_experts > 0, "Gate: bad sizes ", input_dim, ", ", num_gates, ", ", num_experts);
  linear_ = register_module("linear", torch::nn::Linear(input_dim, num_gates * num_experts));
  if (options_.batch_norm) bn_ = register_module("bn", torch::nn::BatchNorm1d(num_gates * num_experts));
}

torch::Tensor GateImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = linear_->forward(x);
  if (bn_) h = bn_->forward(h);
  h = h.view({x.size(0), num_gates_, num_experts_});
  return options_.softmax ? torch::softmax(h, -1) : torch::sigmoid(h);
}

torch::Tensor MixExperts(const torch::Tensor& gates, const torch::Tensor& experts) {
  TORCH_CHECK(gates.dim() == 3 && experts.dim() == 3 && gates.size(0) == experts.size(0) && gates.size(2) == experts.size(1),
              "MixExperts: gates ", gates.sizes(), " do not fit experts ", experts.sizes());
  return torch::bmm(gates, experts);
}

// ---------------------------------------------------------------------------------------------
// Shared MLPs and towers

torch::Tensor LastHiddenWeight(MLP& mlp) {
  const size_t layers = mlp->options().dims.size();
  if (layers == 0) return {};
  return mlp->named_parameters()["linear" + std::to_string(layers - 1) + ".weight"];
}

TaskTowersImpl::TaskTowersImpl(int64_t input_dim, std::vector<MlpOptions> per_task) {
  for (size_t t = 0; t < per_task.size(); ++t) {
    per_task[t].output_layer = true;
    towers_.push_back(register_module("tower" + std::to_string(t), MLP(input_dim, std::move(per_task[t]))));
  }
}

torch::Tensor TaskTowersImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 2 || (x.dim() == 3 && x.size(1) == num_tasks()), "TaskTowers: bad input ", x.sizes());
  std::vector<torch::Tensor> out;
  out.reserve(towers_.size());
  for (size_t t = 0; t < towers_.size(); ++t)
    out.push_back(towers_[t]->forward(x.dim() == 3 ? x.select(1, static_cast<int64_t>(t)) : x));
  return torch::cat(out, 1);
}

torch::Tensor TaskTowersImpl::ForwardEach(const std::vector<torch::Tensor>& per_task) {
  TORCH_CHECK(static_cast<int64_t>(per_task.size()) == num_tasks(), "TaskTowers: ", per_task.size(), " inputs for ", num_tasks(), " towers");
  std::vector<torch::Tensor> out;
  out.reserve(towers_.size());
  for (size_t t = 0; t < towers_.size(); ++t) out.push_back(towers_[t]->forward(per_task[t]));
  return torch::cat(out, 1);
}

std::vector<MlpOptions> TowerOptions(const std::vector<config::Mlp>& towers, int num_tasks,
                                     const std::vector<int64_t>& default_dims, const std::string& field) {
  const int n = static_cast<int>(towers.size());
  if (n > 1 && n != num_tasks)
    throw ConfigError("field " + field + ": " + std::to_string(n) + " towers for " + std::to_string(num_tasks) +
                      " tasks (give one for every task, or one per task)");
  std::vector<MlpOptions> out;
  for (int t = 0; t < num_tasks; ++t) {
    const config::Mlp& c = n == 0 ? config::Mlp::default_instance() : towers[n == 1 ? 0 : t];
    out.push_back(MlpOptionsFromConfig(c, default_dims, /*output_layer=*/true));
  }
  return out;
}

}  // namespace shardrec::models

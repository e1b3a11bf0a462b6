#include "models/edcn.h"

#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <string>
#include <tuple>

#include "common/error.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {
namespace {

GateKind ToGateKind(config::Edcn::GateType g) {
  switch (g) {
    case config::Edcn::FGU:
      return GateKind::kFieldWise;
    case config::Edcn::BGU:
      return GateKind::kBitWise;
  }
  throw ConfigError("field model.edcn.gate_type: unknown gate type " + std::to_string(static_cast<int>(g)));
}

BridgeKind ToBridgeKind(config::Edcn::BridgeType b) {
  switch (b) {
    case config::Edcn::HADAMARD_PRODUCT:
      return BridgeKind::kHadamardProduct;
    case config::Edcn::ADD:
      return BridgeKind::kAdd;
    case config::Edcn::CONCAT:
      return BridgeKind::kConcat;
    case config::Edcn::ATTENTION_POOLING:
      return BridgeKind::kAttentionPooling;
  }
  throw ConfigError("field model.edcn.bridge_type: unknown bridge type " + std::to_string(static_cast<int>(b)));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Regulation

RegulationImpl::RegulationImpl(std::vector<int64_t> field_widths, GateKind kind, double temperature)
    : kind_(kind), temperature_(temperature) {
  if (!(temperature > 0)) throw ConfigError("regulation: temperature must be > 0, got " + std::to_string(temperature));
  const auto fields = static_cast<int64_t>(field_widths.size());
  if (fields == 0) throw ConfigError("regulation: no fields");
  const int64_t widest = *std::max_element(field_widths.begin(), field_widths.end());
  if (*std::min_element(field_widths.begin(), field_widths.end()) < 1) throw ConfigError("regulation: a field of width < 1");

  // Column j of the flat input belongs to field f (bit k): it reads entry f (field-wise) or
  // f * W + k (bit-wise) of the softmax output.
  std::vector<int64_t> source;
  for (int64_t f = 0; f < fields; ++f) {
    for (int64_t k = 0; k < field_widths[f]; ++k) source.push_back(kind == GateKind::kFieldWise ? f : f * widest + k);
  }
  column_source_ = register_buffer("column_source", torch::tensor(source, torch::kLong));
  std::vector<int64_t> shape = {fields};
  if (kind == GateKind::kBitWise) {
    shape = {fields, widest};
    torch::Tensor bit = torch::arange(widest).unsqueeze(0);                        // [1, W]
    torch::Tensor width = torch::tensor(field_widths, torch::kLong).unsqueeze(1);  // [F, 1]
    invalid_bits_ = register_buffer("invalid_bits", bit >= width);
    fields_per_bit_ = register_buffer("fields_per_bit", (bit < width).sum(0, /*keepdim=*/true).to(torch::kFloat));
  } else {
    fields_per_bit_ = register_buffer("fields_per_bit", torch::full({1}, static_cast<double>(fields)));
  }
  cross_gate_ = register_parameter("cross_gate", torch::ones(shape));
  deep_gate_ = register_parameter("deep_gate", torch::ones(shape));
}

torch::Tensor RegulationImpl::Expand(const torch::Tensor& weights) const {
  torch::Tensor logits = weights / temperature_;
  // Bits a field does not have take no share of the softmax (every bit has its widest field).
  if (kind_ == GateKind::kBitWise) logits = logits.masked_fill(invalid_bits_, -std::numeric_limits<float>::infinity());
  // Out of place: softmax keeps its output for the backward pass.
  return torch::softmax(logits, 0).mul(fields_per_bit_).reshape({-1}).index_select(0, column_source_);
}

std::pair<torch::Tensor, torch::Tensor> RegulationImpl::forward(const torch::Tensor& x) {
  return {x * Expand(cross_gate_), x * Expand(deep_gate_)};
}

// ---------------------------------------------------------------------------------------------
// Bridge

BridgeImpl::BridgeImpl(int64_t dim, BridgeKind kind) : kind_(kind) {
  if (kind == BridgeKind::kConcat) {
    concat_ = register_module("concat", torch::nn::Linear(2 * dim, dim));
  } else if (kind == BridgeKind::kAttentionPooling) {
    const auto no_bias = torch::nn::LinearOptions(dim, dim).bias(false);
    cross_hidden_ = register_module("cross_hidden", torch::nn::Linear(dim, dim));
    cross_score_ = register_module("cross_score", torch::nn::Linear(no_bias));
    deep_hidden_ = register_module("deep_hidden", torch::nn::Linear(dim, dim));
    deep_score_ = register_module("deep_score", torch::nn::Linear(no_bias));
  }
}

torch::Tensor BridgeImpl::Attention(torch::nn::Linear& hidden, torch::nn::Linear& score, const torch::Tensor& z) {
  return torch::softmax(score->forward(torch::relu(hidden->forward(z))), -1);
}

torch::Tensor BridgeImpl::forward(const torch::Tensor& cross, const torch::Tensor& deep) {
  switch (kind_) {
    case BridgeKind::kHadamardProduct:
      return cross * deep;
    case BridgeKind::kAdd:
      return cross + deep;
    case BridgeKind::kConcat:
      return torch::relu(concat_->forward(torch::cat({cross, deep}, 1)));
    case BridgeKind::kAttentionPooling:
      return Attention(cross_hidden_, cross_score_, cross) * cross +
             Attention(deep_hidden_, deep_score_, deep) * deep;
  }
  TORCH_CHECK(false, "unknown bridge kind ", static_cast<int>(kind_));
}

// ---------------------------------------------------------------------------------------------
// Edcn

Edcn::Edcn(const config::Edcn& config, const data::FeatureSchema& schema)
    : features_(ResolveFeatures(schema, config.features(), FeatureUse::kFlat, "model.edcn.features")) {
  RequireAtLeast(config.cross_num(), 1, "model.edcn.cross_num");
  if (!(config.temperature() > 0)) {
    throw ConfigError("field model.edcn.temperature: must be > 0, got " + std::to_string(config.temperature()));
  }
  if (config.mlp().dims_size() > 0) {
    throw ConfigError("field model.edcn.mlp.dims: EDCN's deep blocks are fixed at [D, D] (D = input width); leave dims empty");
  }
  field_widths_ = features_.dims;
  field_widths_.insert(field_widths_.end(), features_.dense_columns.size(), 1);
  const int64_t dim = features_.flat_dim;
  const auto layers = static_cast<size_t>(config.cross_num());

  cross_ = register_module("cross", std::make_shared<VectorCrossNet>(dim, config.cross_num()));
  const MlpOptions deep_options = MlpOptionsFromConfig(config.mlp(), {dim, dim}, /*output_layer=*/false);
  const BridgeKind bridge_kind = ToBridgeKind(config.bridge_type());
  const GateKind gate_kind = ToGateKind(config.gate_type());
  for (size_t l = 0; l < layers; ++l) {
    const std::string n = std::to_string(l);
    deep_.push_back(register_module("deep" + n, MLP(dim, deep_options)));
    bridges_.push_back(register_module("bridge" + n, Bridge(dim, bridge_kind)));
    if (config.use_regulation_module()) {
      regulations_.push_back(register_module("regulation" + n, Regulation(field_widths_, gate_kind, config.temperature())));
    }
  }
  linear_ = register_module("linear", LR(3 * dim));
}

std::pair<torch::Tensor, torch::Tensor> Edcn::Regulate(size_t l, const torch::Tensor& z) {
  if (regulations_.empty()) return {z, z};
  return regulations_[l]->forward(z);
}

torch::Tensor Edcn::forward(const ModelInput& input) {
  auto [cross, deep] = Regulate(0, Flatten(input, features_));
  const torch::Tensor cross0 = cross;
  torch::Tensor bridge;
  for (size_t l = 0; l < deep_.size(); ++l) {
    if (l > 0) std::tie(cross, deep) = Regulate(l, bridge);
    cross = cross_->Layer(static_cast<int64_t>(l), cross0, cross);
    deep = deep_[l]->forward(deep);
    bridge = bridges_[l]->forward(cross, deep);
  }
  return linear_->forward(torch::cat({cross, deep, bridge}, 1)).squeeze(1);
}

}  // namespace shardrec::models

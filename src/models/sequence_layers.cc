#include "models/sequence_layers.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <utility>

#include "common/error.h"
#include "models/fused_batch_norm_activation.h"

namespace shardrec::models {

// ---------------------------------------------------------------------------------------------
// Histories and their targets

namespace {

// (FeatureSchema::Find lives in the data library, which the models do not link.)
int FindFeature(const data::FeatureSchema& schema, const std::string& name) {
  for (size_t i = 0; i < schema.features.size(); ++i) {
    if (schema.features[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

std::string Entry(const std::string& prefix, const char* list, size_t k) {
  return "field " + prefix + "." + list + "[" + std::to_string(k) + "]: ";
}

}  // namespace

int64_t BehaviourFeatures::target_dim() const {
  int64_t d = 0;
  for (const BehaviourPair& p : pairs) d += p.dim;
  return d;
}

BehaviourFeatures ResolveBehaviourFeatures(const data::FeatureSchema& schema, const std::vector<std::string>& histories,
                                           const std::vector<std::string>& targets,
                                           const std::vector<std::string>& others, const std::string& prefix,
                                           bool same_length) {
  if (histories.empty()) {
    throw ConfigError("field " + prefix +
                      ".history_features: missing: name the history features (sequences with "
                      "pooling CONCAT)");
  }
  if (targets.size() != histories.size()) {
    throw ConfigError("field " + prefix + ".target_features: needs one target per history (" +
                      std::to_string(histories.size()) + "), got " + std::to_string(targets.size()));
  }
  BehaviourFeatures out;
  std::set<int> seen;
  for (size_t k = 0; k < histories.size(); ++k) {
    BehaviourPair p;
    p.history = FindFeature(schema, histories[k]);
    p.target = FindFeature(schema, targets[k]);
    if (p.history < 0)
      throw ConfigError(Entry(prefix, "history_features", k) + "unknown feature \"" + histories[k] + "\"");
    if (p.target < 0) throw ConfigError(Entry(prefix, "target_features", k) + "unknown feature \"" + targets[k] + "\"");
    const data::FeatureSpec& h = schema.features[p.history];
    const data::FeatureSpec& t = schema.features[p.target];
    if (h.kind != data::FeatureKind::kSequence || h.pooling != data::Pooling::kConcat) {
      throw ConfigError(Entry(prefix, "history_features", k) + "feature \"" + h.name +
                        "\" must be a sequence feature with pooling CONCAT");
    }
    if (!seen.insert(p.history).second) {
      throw ConfigError(Entry(prefix, "history_features", k) + "feature \"" + h.name + "\" is listed twice");
    }
    if (t.kind != data::FeatureKind::kSparse) {
      throw ConfigError(Entry(prefix, "target_features", k) + "feature \"" + t.name + "\" must be a sparse feature");
    }
    if (h.dim != t.dim) {
      throw ConfigError(Entry(prefix, "target_features", k) + "\"" + t.name + "\" has embedding dim " +
                        std::to_string(t.dim) + " but its history \"" + h.name + "\" has " + std::to_string(h.dim));
    }
    if (same_length && !out.pairs.empty() && h.max_len != out.pairs[0].max_len) {
      throw ConfigError(Entry(prefix, "history_features", k) + "\"" + h.name + "\" has max_len " +
                        std::to_string(h.max_len) + " but \"" + out.pairs[0].history_name + "\" has " +
                        std::to_string(out.pairs[0].max_len) + "; the histories are concatenated step by step");
    }
    p.dim = h.dim;
    p.max_len = h.max_len;
    p.history_name = h.name;
    p.target_name = t.name;
    out.pairs.push_back(std::move(p));
  }

  std::vector<std::string> other_names = others;
  if (other_names.empty()) {
    // Every feature the top MLP can take, except the targets (they enter it anyway).
    for (const data::FeatureSpec& f : schema.features) {
      const bool flat = f.kind != data::FeatureKind::kSequence || f.pooling != data::Pooling::kConcat;
      const bool is_target = std::any_of(out.pairs.begin(), out.pairs.end(), [&](const BehaviourPair& p) {
        return schema.features[p.target].name == f.name;
      });
      if (flat && !is_target) other_names.push_back(f.name);
    }
  }
  if (!other_names.empty()) out.others = ResolveFeatures(schema, other_names, FeatureUse::kFlat, prefix + ".features");
  return out;
}

torch::Tensor ConcatTargets(const ModelInput& input, const BehaviourFeatures& features) {
  std::vector<torch::Tensor> parts;
  parts.reserve(features.pairs.size());
  for (const BehaviourPair& p : features.pairs) {
    const torch::Tensor& emb = input.features.at(p.target).emb;
    TORCH_CHECK(emb.defined() && emb.dim() == 2 && emb.size(1) == p.dim, "target \"", p.target_name,
                "\": expected an embedding [B, ", p.dim, "]");
    parts.push_back(emb);
  }
  return parts.size() == 1 ? parts[0] : torch::cat(parts, 1);
}

BehaviourSequence ConcatHistories(const ModelInput& input, const BehaviourFeatures& features) {
  BehaviourSequence out;
  std::vector<torch::Tensor> parts;
  parts.reserve(features.pairs.size());
  for (const BehaviourPair& p : features.pairs) {
    const FeatureInput& in = input.features.at(p.history);
    TORCH_CHECK(in.emb.defined() && in.emb.dim() == 3 && in.emb.size(2) == p.dim && in.mask.defined(), "history \"",
                p.history_name, "\": expected a concat-pooled sequence [B, L, ", p.dim, "] with a mask");
    TORCH_CHECK(parts.empty() || in.emb.size(1) == parts[0].size(1), "history \"", p.history_name, "\": length ",
                in.emb.size(1), " differs from the other histories' ", parts[0].size(1));
    parts.push_back(in.emb);
    // The reference's rule: a step is padding only where every history is padding.
    out.mask = out.mask.defined() ? out.mask.logical_or(in.mask) : in.mask;
  }
  out.steps = parts.size() == 1 ? parts[0] : torch::cat(parts, 2);
  out.lengths = out.mask.sum(1);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Real positions

RealPositions FindRealPositions(const torch::Tensor& mask) {
  TORCH_CHECK(mask.dim() == 2 && mask.scalar_type() == torch::kBool, "expected a [B, L] bool mask, got ", mask.sizes());
  RealPositions p;
  p.batch = mask.size(0);
  p.len = mask.size(1);
  p.mask = mask;
  p.flat = mask.reshape({-1}).nonzero().squeeze(1);
  p.row = torch::div(p.flat, p.len, /*rounding_mode=*/"floor");
  p.offsets = torch::cat({torch::zeros({1}, torch::kLong), mask.sum(1).cumsum(0)});
  return p;
}

torch::Tensor ScatterReal(const torch::Tensor& values, const RealPositions& positions, double fill) {
  torch::Tensor grid = torch::full({positions.batch * positions.len}, fill, values.options());
  return grid.index_put({positions.flat}, values).view({positions.batch, positions.len});
}

torch::Tensor MaskedSoftmax(const torch::Tensor& scores, const torch::Tensor& mask) {
  // A finite fill: a row without real positions then gives a uniform softmax (zeroed below)
  // instead of NaN, whose gradient would poison everything.
  const double lowest = std::numeric_limits<float>::lowest();
  return torch::softmax(scores.masked_fill(mask.logical_not(), lowest), 1).masked_fill(mask.logical_not(), 0);
}

// ---------------------------------------------------------------------------------------------
// Per-row segments of the real positions (rows of one batch row are contiguous): repeat a
// per-row value at each of its positions, and sum over each row's positions. Each is the other's
// gradient; both are plain loops over rows (ATen's index_add_ backward of index_select runs one
// tiny add per index).

namespace {

torch::Tensor RepeatRows(const torch::Tensor& per_row, const torch::Tensor& offsets, int64_t n) {
  torch::Tensor src = per_row.contiguous();
  const int64_t B = src.size(0), D = src.numel() / std::max<int64_t>(1, B);
  torch::Tensor out = torch::empty({n, D}, src.options());
  const float* sp = src.data_ptr<float>();
  const int64_t* op = offsets.data_ptr<int64_t>();
  float* outp = out.data_ptr<float>();
  at::parallel_for(0, B, 256, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      for (int64_t r = op[b]; r < op[b + 1]; ++r) std::memcpy(outp + r * D, sp + b * D, D * sizeof(float));
  });
  return out;
}

torch::Tensor SumRows(const torch::Tensor& values, const torch::Tensor& offsets) {
  torch::Tensor src = values.contiguous();
  const int64_t B = offsets.size(0) - 1, D = src.size(1);
  torch::Tensor out = torch::zeros({B, D}, src.options());
  const float* sp = src.data_ptr<float>();
  const int64_t* op = offsets.data_ptr<int64_t>();
  float* outp = out.data_ptr<float>();
  at::parallel_for(0, B, 256, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      float* __restrict o = outp + b * D;
      for (int64_t r = op[b]; r < op[b + 1]; ++r) {
        const float* __restrict v = sp + r * D;
        for (int64_t d = 0; d < D; ++d) o[d] += v[d];
      }
    }
  });
  return out;
}

class RepeatPerRowFunction : public torch::autograd::Function<RepeatPerRowFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& per_row,
                               const torch::Tensor& offsets, int64_t n) {
    ctx->save_for_backward({offsets});
    return RepeatRows(per_row, offsets, n);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list g) {
    return {SumRows(g[0], ctx->get_saved_variables()[0]), torch::Tensor(), torch::Tensor()};
  }
};

class SumPerRowFunction : public torch::autograd::Function<SumPerRowFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& values,
                               const torch::Tensor& offsets) {
    ctx->save_for_backward({offsets});
    ctx->saved_data["n"] = values.size(0);
    return SumRows(values, offsets);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list g) {
    return {RepeatRows(g[0], ctx->get_saved_variables()[0], ctx->saved_data["n"].toInt()), torch::Tensor()};
  }
};

// index_select at unique indices; the gradient is written back with index_put_ (vectorised),
// not accumulated with index_add_.
class GatherRowsFunction : public torch::autograd::Function<GatherRowsFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& source,
                               const torch::Tensor& index) {
    ctx->save_for_backward({index});
    ctx->saved_data["rows"] = source.size(0);
    return source.index_select(0, index);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list g) {
    std::vector<int64_t> shape = g[0].sizes().vec();
    shape[0] = ctx->saved_data["rows"].toInt();
    torch::Tensor grad = torch::zeros(shape, g[0].options());
    grad.index_put_({ctx->get_saved_variables()[0]}, g[0]);
    return {grad, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor GatherReal(const torch::Tensor& seq, const RealPositions& positions) {
  std::vector<int64_t> shape = seq.sizes().vec();
  TORCH_CHECK(shape.size() >= 2 && shape[0] == positions.batch && shape[1] == positions.len, "GatherReal: sequence ",
              seq.sizes(), " does not match the mask [", positions.batch, ", ", positions.len, "]");
  shape.erase(shape.begin());
  shape[0] = positions.batch * positions.len;
  return GatherRowsFunction::apply(seq.reshape(shape), positions.flat);
}

torch::Tensor RepeatPerRow(const torch::Tensor& per_row, const RealPositions& positions) {
  TORCH_CHECK(per_row.dim() == 2 && per_row.size(0) == positions.batch && per_row.scalar_type() == torch::kFloat,
              "RepeatPerRow: expected float [", positions.batch, ", D], got ", per_row.sizes());
  return RepeatPerRowFunction::apply(per_row, positions.offsets, positions.count());
}

torch::Tensor SumPerRow(const torch::Tensor& values, const RealPositions& positions) {
  TORCH_CHECK(values.dim() == 2 && values.size(0) == positions.count() && values.scalar_type() == torch::kFloat,
              "SumPerRow: expected float [", positions.count(), ", D], got ", values.sizes());
  return SumPerRowFunction::apply(values, positions.offsets);
}

// ---------------------------------------------------------------------------------------------
// DIN activation unit

ActivationUnitImpl::ActivationUnitImpl(int64_t dim, ActivationUnitOptions options)
    : dim_(dim), options_(std::move(options)) {
  if (dim_ <= 0) throw ConfigError("activation unit: embedding dim must be positive, got " + std::to_string(dim_));
  if (options_.units.empty()) throw ConfigError("field attention_units: needs at least one hidden layer");
  int64_t in = 4 * dim_;
  for (size_t i = 0; i < options_.units.size(); ++i) {
    const int64_t width = options_.units[i];
    if (width <= 0) {
      throw ConfigError("field attention_units: attention_units[" + std::to_string(i) + "] must be positive, got " +
                        std::to_string(width));
    }
    const std::string n = std::to_string(i);
    Hidden h;
    h.linear = register_module("linear" + n, torch::nn::Linear(in, width));
    h.bn = register_module("bn" + n, torch::nn::BatchNorm1d(width));
    h.act = register_module("act" + n, Activation(options_.activation));
    hidden_.push_back(std::move(h));
    in = width;
  }
  out_ = register_module("out", torch::nn::Linear(in, 1));
}

MlpOptions ActivationUnitImpl::mlp_options() const {
  MlpOptions o;
  o.dims = options_.units;
  o.activation = options_.activation;
  o.output_layer = true;
  return o;
}

torch::Tensor ActivationUnitImpl::BatchNormActivation(Hidden& layer, const torch::Tensor& z, const torch::Tensor& w_in,
                                                      const torch::Tensor& row_bias, const torch::Tensor& offsets,
                                                      bool last) {
  FusedLayer f;
  f.input = z;
  f.input_weight = w_in;
  f.row_bias = row_bias;
  f.offsets = offsets;
  f.bn = layer.bn.get();
  f.activation = options_.activation;
  for (const auto& p : layer.act->named_parameters()) f.activation_param = p.value();  // Dice alpha or PReLU weight
  if (last) {  // the output layer's score in the same pass
    f.out_weight = out_->weight;
    f.out_bias = out_->bias;
  }
  f.training = is_training();
  return FusedBatchNormActivation(f);
}

torch::Tensor ActivationUnitImpl::Scores(const torch::Tensor& target, const torch::Tensor& history_real,
                                         const RealPositions& positions) {
  TORCH_CHECK(target.dim() == 2 && target.size(1) == dim_ && target.size(0) == positions.batch,
              "activation unit: target must be [", positions.batch, ", ", dim_, "], got ", target.sizes());
  const int64_t D = dim_;
  // W [t, h, t - h, t * h] = (W1 + W3) t + (W2 - W3) h + W4 (t * h).
  const torch::Tensor& w = hidden_[0].linear->weight;  // [U, 4D]
  torch::Tensor w_target = w.narrow(1, 0, D) + w.narrow(1, 2 * D, D);
  torch::Tensor w_position = torch::cat({w.narrow(1, D, D) - w.narrow(1, 2 * D, D), w.narrow(1, 3 * D, D)}, 1);
  torch::Tensor row_bias = torch::addmm(hidden_[0].linear->bias, target, w_target.t());  // [B, U], once per row
  torch::Tensor target_at = RepeatPerRow(target, positions);                             // [N, D]
  torch::Tensor per_position = torch::cat({history_real, history_real * target_at}, 1);  // [N, 2D]
  // The fused pass projects per_position by w_position itself: [N, U] is never materialised.
  const size_t last = hidden_.size() - 1;
  torch::Tensor x = BatchNormActivation(hidden_[0], per_position, w_position, row_bias, positions.offsets, last == 0);
  for (size_t i = 1; i < hidden_.size(); ++i) {
    x = BatchNormActivation(hidden_[i], hidden_[i].linear->forward(x), torch::Tensor(), torch::Tensor(),
                            torch::Tensor(), i == last);
  }
  return x;  // [N]: the output layer ran inside the last hidden layer's pass
}

torch::Tensor ActivationUnitImpl::RealWeights(const torch::Tensor& target, const torch::Tensor& history_real,
                                              const RealPositions& positions) {
  torch::Tensor scores = Scores(target, history_real, positions);
  if (!options_.use_softmax) return scores;
  torch::Tensor grid = ScatterReal(scores, positions, 0.0);
  return MaskedSoftmax(grid, positions.mask).reshape({-1}).index_select(0, positions.flat);
}

torch::Tensor ActivationUnitImpl::Weights(const torch::Tensor& target, const torch::Tensor& history,
                                          const torch::Tensor& mask) {
  RealPositions positions = FindRealPositions(mask);
  return ScatterReal(RealWeights(target, GatherReal(history, positions), positions), positions, 0.0);
}

torch::Tensor ActivationUnitImpl::Pool(const torch::Tensor& target, const torch::Tensor& history,
                                       const RealPositions& positions) {
  torch::Tensor history_real = GatherReal(history, positions);  // [N, D]
  torch::Tensor w = RealWeights(target, history_real, positions);
  return SumPerRow(history_real * w.unsqueeze(1), positions);
}

torch::Tensor ActivationUnitImpl::forward(const torch::Tensor& target, const torch::Tensor& history,
                                          const torch::Tensor& mask) {
  return Pool(target, history, FindRealPositions(mask));
}

}  // namespace shardrec::models

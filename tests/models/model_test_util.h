#pragma once
// Helpers for the model tests: a small hand-built schema, random model inputs, deterministic
// parameters.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <vector>

#include "data/feature_schema.h"
#include "models/layers.h"
#include "models/model.h"

namespace shardrec::models::testing {

inline data::FeatureSpec Sparse(const std::string& name, int dim) {
  data::FeatureSpec s;
  s.name = name;
  s.kind = data::FeatureKind::kSparse;
  s.dim = dim;
  return s;
}

inline data::FeatureSpec Sequence(const std::string& name, int dim, data::Pooling pooling) {
  data::FeatureSpec s = Sparse(name, dim);
  s.kind = data::FeatureKind::kSequence;
  s.pooling = pooling;
  return s;
}

inline data::FeatureSpec Dense(const std::string& name) {
  data::FeatureSpec s;
  s.name = name;
  s.kind = data::FeatureKind::kDense;
  return s;
}

// Fills in table, sparse_index and dense_index, num_sparse and num_dense.
inline data::FeatureSchema MakeSchema(std::vector<data::FeatureSpec> features) {
  data::FeatureSchema schema;
  for (data::FeatureSpec& f : features) {
    if (f.kind == data::FeatureKind::kDense) {
      f.dense_index = schema.num_dense++;
    } else {
      f.table = static_cast<int>(schema.tables.size());
      f.sparse_index = schema.num_sparse++;
      ps::TableSpec t;
      t.name = f.name;
      t.dim = f.dim;
      schema.tables.push_back(t);
    }
  }
  schema.features = std::move(features);
  return schema;
}

// The brief's example: s0, s1, s2 sparse dim 4; h0 mean-pooled sequence dim 4; d0, d1 dense; plus
// c0, a concat-pooled sequence dim 4 (L = 3) that flat and stacked parts must skip.
inline data::FeatureSchema SmallSchema() {
  return MakeSchema({Sparse("s0", 4), Dense("d0"), Sparse("s1", 4), Sequence("h0", 4, data::Pooling::kMean),
                     Sequence("c0", 4, data::Pooling::kConcat), Sparse("s2", 4), Dense("d1")});
}

// Random inputs for `schema`: embeddings N(0, 1) (requires_grad leaves when asked), dense U(0, 1).
inline ModelInput RandomInput(const data::FeatureSchema& schema, int64_t batch, bool requires_grad = false) {
  ModelInput in;
  in.schema = &schema;
  in.dense = torch::rand({batch, schema.num_dense});
  in.features.resize(schema.features.size());
  for (size_t i = 0; i < schema.features.size(); ++i) {
    const data::FeatureSpec& f = schema.features[i];
    if (f.kind == data::FeatureKind::kDense) continue;
    FeatureInput& fi = in.features[i];
    if (f.kind == data::FeatureKind::kSequence && f.pooling == data::Pooling::kConcat) {
      const int64_t len = 3;
      fi.emb = torch::randn({batch, len, f.dim});
      fi.mask = torch::ones({batch, len}, torch::kBool);
      fi.lengths = torch::full({batch}, len, torch::kLong);
    } else {
      fi.emb = torch::randn({batch, f.dim});
      if (f.kind == data::FeatureKind::kSequence) fi.lengths = torch::ones({batch}, torch::kLong);
    }
    fi.emb.set_requires_grad(requires_grad);
  }
  return in;
}

// Every parameter N(0, scale); batch-norm running means N(0, 0.5) and running variances
// U(0.5, 1.5), so that eval-mode batch norm is not the identity.
inline void SetDeterministicParameters(torch::nn::Module& module, uint64_t seed, double scale = 0.5) {
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (torch::Tensor& p : module.parameters()) p.normal_(0, scale);
  for (auto& b : module.named_buffers()) {
    const std::string& name = b.key();
    if (name.size() >= 12 && name.compare(name.size() - 12, 12, "running_mean") == 0) b.value().normal_(0, 0.5);
    if (name.size() >= 11 && name.compare(name.size() - 11, 11, "running_var") == 0) b.value().uniform_(0.5, 1.5);
  }
}

// ---------------------------------------------------------------------------------------------
// Layers written out with plain ops

inline torch::Tensor Param(torch::nn::Module& m, const std::string& name) {
  auto params = m.named_parameters();
  const torch::Tensor* p = params.find(name);
  if (p == nullptr) ADD_FAILURE() << "no parameter " << name;
  return p ? p->detach() : torch::Tensor();
}

inline torch::Tensor Buffer(torch::nn::Module& m, const std::string& name) {
  auto buffers = m.named_buffers();
  const torch::Tensor* b = buffers.find(name);
  if (b == nullptr) ADD_FAILURE() << "no buffer " << name;
  return b ? b->detach() : torch::Tensor();
}

// Dice by its definition, element by element in double precision (reference activation.py).
inline torch::Tensor DiceByLoop(const torch::Tensor& x, double alpha, double eps) {
  torch::Tensor xd = x.to(torch::kDouble).contiguous();
  torch::Tensor out = torch::empty_like(xd);
  auto a = xd.accessor<double, 2>();
  auto o = out.accessor<double, 2>();
  for (int64_t i = 0; i < xd.size(0); ++i) {
    double mean = 0;
    for (int64_t j = 0; j < xd.size(1); ++j) mean += a[i][j];
    mean /= static_cast<double>(xd.size(1));
    double var = 0;
    for (int64_t j = 0; j < xd.size(1); ++j) var += (a[i][j] - mean) * (a[i][j] - mean) + eps;
    for (int64_t j = 0; j < xd.size(1); ++j) {
      const double p = 1 / (1 + std::exp(-(a[i][j] - mean) / std::sqrt(var)));
      o[i][j] = p * a[i][j] + (1 - p) * alpha * a[i][j];
    }
  }
  return out.to(torch::kFloat);
}

// An activation written out from its formula. `prefix` names the activation module in `m`.
inline torch::Tensor ActivationByFormula(ActivationKind kind, const torch::Tensor& h, torch::nn::Module& m,
                                         const std::string& prefix) {
  switch (kind) {
    case ActivationKind::kRelu:
      return (h + h.abs()) / 2;
    case ActivationKind::kPrelu: {
      const double a = Param(m, prefix + ".prelu.weight").item<double>();
      return torch::where(h >= 0, h, a * h);
    }
    case ActivationKind::kSigmoid:
      return 1 / (1 + torch::exp(-h));
    case ActivationKind::kLeakyRelu:
      return torch::where(h >= 0, h, 0.01 * h);
    case ActivationKind::kTanh:
      return (torch::exp(h) - torch::exp(-h)) / (torch::exp(h) + torch::exp(-h));
    case ActivationKind::kDice:
      return DiceByLoop(h, Param(m, prefix + ".dice.alpha").item<double>(), 1e-3);
  }
  return {};
}

// The eval-mode MLP written out: per layer x W^T + b, (x - mean) / sqrt(var + eps) * gamma + beta,
// activation; then the output layer. `prefix` names the MLP inside `m` ("" or e.g. "mlp.").
inline torch::Tensor MlpByHand(torch::nn::Module& m, const std::string& prefix, const MlpOptions& opts,
                               const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  torch::Tensor h = x;
  for (size_t i = 0; i < opts.dims.size(); ++i) {
    const std::string n = std::to_string(i);
    const std::string linear = prefix + "linear" + n, bn = prefix + "bn" + n;
    h = h.matmul(Param(m, linear + ".weight").t()) + Param(m, linear + ".bias");
    h = (h - Buffer(m, bn + ".running_mean")) / torch::sqrt(Buffer(m, bn + ".running_var") + 1e-5) *
            Param(m, bn + ".weight") +
        Param(m, bn + ".bias");
    h = ActivationByFormula(opts.activation, h, m, prefix + "act" + n);
  }
  if (opts.output_layer) h = h.matmul(Param(m, prefix + "out.weight").t()) + Param(m, prefix + "out.bias");
  return h;
}

// Every parameter of `model` and every tensor of `inputs` (leaves the test made require grad,
// e.g. the embeddings) got a non-zero gradient from the last backward.
inline void ExpectGradientsEverywhere(torch::nn::Module& model, const std::vector<torch::Tensor>& inputs) {
  for (const auto& p : model.named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    ASSERT_TRUE(inputs[i].grad().defined()) << "input " << i;
    EXPECT_GT(inputs[i].grad().abs().sum().item<double>(), 0) << "input " << i;
  }
}

}  // namespace shardrec::models::testing

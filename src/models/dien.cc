#include "models/dien.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "common/error.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {
namespace {

using data::FeatureKind;
using data::FeatureSpec;
using data::Pooling;

// The reference example's top MLP.
const std::vector<int64_t> kDefaultMlpDims = {256, 128};

std::string Field(const char* name) { return std::string("model.dien.") + name; }
std::string Field(const char* list, int k) { return Field(list) + "[" + std::to_string(k) + "]"; }

[[noreturn]] void Fail(const std::string& field, const std::string& what) {
  throw ConfigError("field " + field + ": " + what);
}

bool IsConcatSequence(const FeatureSpec& f) {
  return f.kind == FeatureKind::kSequence && f.pooling == Pooling::kConcat;
}

// Schema index of the feature a list entry names, which must pass `fits` (else `what` says why).
template <typename Fits>
int Resolve(const data::FeatureSchema& schema, const std::string& name, const std::string& field, Fits fits,
            const char* what) {
  const int f = schema.Find(name);
  if (f < 0) Fail(field, "unknown feature \"" + name + "\"");
  if (!fits(schema.features[f])) Fail(field, "feature \"" + name + "\" " + what);
  return f;
}

AttentionalGruKind KindOf(int gru_type) {
  switch (gru_type) {
    case config::Dien::AIGRU:
      return AttentionalGruKind::kAigru;
    case config::Dien::AGRU:
      return AttentionalGruKind::kAgru;
    default:
      return AttentionalGruKind::kAugru;
  }
}

// Steps before the returned one are padding in every row of the batch (with right-aligned
// histories: the first L - max(length) steps), so the GRUs can skip them: a state that holds still
// at padding is zero there anyway. At least the last step is kept, so that shapes stay valid.
int64_t FirstRealStep(const torch::Tensor& mask) {
  torch::Tensor real_steps = mask.any(0).nonzero();
  return real_steps.size(0) > 0 ? real_steps[0][0].item<int64_t>() : mask.size(1) - 1;
}

const FeatureInput& SequenceInput(const ModelInput& input, int f) {
  const FeatureInput& in = input.features.at(static_cast<size_t>(f));
  TORCH_CHECK(in.emb.defined() && in.emb.dim() == 3 && in.mask.defined(), "DIEN: feature \"",
              input.schema->features[f].name, "\" needs a [B, L, D] sequence with its mask");
  return in;
}

}  // namespace

DIEN::DIEN(const config::Dien& config, const data::FeatureSchema& schema) : alpha_(config.alpha()) {
  const int K = config.history_features_size();
  if (K == 0) Fail(Field("history_features"), "missing: name the behaviour sequences (sequence features with pooling CONCAT)");
  if (config.target_features_size() != K) {
    Fail(Field("target_features"), "needs one target per history feature (" + std::to_string(K) + "), got " +
                                       std::to_string(config.target_features_size()));
  }
  if (!(alpha_ >= 0) || !std::isfinite(alpha_)) Fail(Field("alpha"), "must be a finite value >= 0");
  const bool has_negatives = config.neg_history_features_size() > 0;
  if (has_negatives ? config.neg_history_features_size() != K : alpha_ > 0) {
    Fail(Field("neg_history_features"), "needs one negative sequence per history feature (" + std::to_string(K) +
                                            ") for the auxiliary loss; got " +
                                            std::to_string(config.neg_history_features_size()) +
                                            " (an empty list needs alpha: 0)");
  }
  const int num_units = config.interest_units_size();
  if (num_units != 0 && num_units != 1 && num_units != K) {
    Fail(Field("interest_units"), "give none (the history dims), one for all, or one per history feature (" +
                                      std::to_string(K) + "); got " + std::to_string(num_units));
  }
  for (int k = 0; k < num_units; ++k)
    if (config.interest_units(k) <= 0) Fail(Field("interest_units", k), "must be > 0");

  const AttentionalGruKind kind = KindOf(config.gru_type());
  const char* concat_what = "is not a sequence with pooling CONCAT";
  std::vector<int> targets;
  int64_t mlp_input = 0;
  for (int k = 0; k < K; ++k) {
    Behaviour b;
    b.history = Resolve(schema, config.history_features(k), Field("history_features", k), IsConcatSequence, concat_what);
    b.target = Resolve(
        schema, config.target_features(k), Field("target_features", k),
        [](const FeatureSpec& f) { return f.kind == FeatureKind::kSparse; }, "is not a sparse feature");
    const FeatureSpec& history = schema.features[b.history];
    if (has_negatives) {
      b.negative = Resolve(schema, config.neg_history_features(k), Field("neg_history_features", k),
                           IsConcatSequence, concat_what);
      const FeatureSpec& negative = schema.features[b.negative];
      if (negative.dim != history.dim || negative.max_len != history.max_len) {
        Fail(Field("neg_history_features", k),
             "\"" + negative.name + "\" (dim " + std::to_string(negative.dim) + ", max_len " +
                 std::to_string(negative.max_len) + ") must match its history \"" + history.name + "\" (dim " +
                 std::to_string(history.dim) + ", max_len " + std::to_string(history.max_len) + ")");
      }
    }
    const int64_t dim = history.dim;
    const int64_t hidden = num_units == 0 ? dim : config.interest_units(num_units == 1 ? 0 : k);
    const int64_t target_dim = schema.features[b.target].dim;
    const std::string n = std::to_string(k);
    b.extractor = register_module("extractor" + n, MaskedGRU(dim, hidden));
    b.evolution = register_module("evolution" + n, InterestEvolution(kind, hidden, target_dim));
    if (hidden != dim && has_negatives && alpha_ > 0) {
      b.aux_projection = register_module("aux_projection" + n,
                                         torch::nn::Linear(torch::nn::LinearOptions(hidden, dim).bias(false)));
    }
    mlp_input += hidden + target_dim;
    targets.push_back(b.target);
    behaviours_.push_back(std::move(b));
  }

  // Default features: every flat one (sparse, dense, mean/sum-pooled) except the targets, which
  // the MLP gets anyway.
  std::vector<std::string> names(config.features().begin(), config.features().end());
  if (names.empty()) {
    for (size_t i = 0; i < schema.features.size(); ++i) {
      const bool target = std::find(targets.begin(), targets.end(), static_cast<int>(i)) != targets.end();
      if (!target && !IsConcatSequence(schema.features[i])) names.push_back(schema.features[i].name);
    }
  }
  if (!names.empty()) features_ = ResolveFeatures(schema, names, FeatureUse::kFlat, Field("features"));
  mlp_input += features_.flat_dim;

  MlpOptions mlp = MlpOptionsFromConfig(config.mlp(), kDefaultMlpDims, /*output_layer=*/true);
  if (!config.mlp().has_activation()) mlp.activation = ActivationKind::kDice;
  mlp_ = register_module("mlp", MLP(mlp_input, mlp));
}

torch::Tensor DIEN::forward(const ModelInput& input) {
  const bool with_aux = is_training() && alpha_ > 0;
  torch::Tensor aux;
  std::vector<torch::Tensor> parts;
  parts.reserve(2 * behaviours_.size() + 1);
  for (Behaviour& b : behaviours_) {
    const FeatureInput& history = SequenceInput(input, b.history);
    const int64_t first = FirstRealStep(history.mask);
    const int64_t steps = history.emb.size(1) - first;
    torch::Tensor mask = history.mask.narrow(1, first, steps);
    torch::Tensor interests = b.extractor->forward(history.emb.narrow(1, first, steps), mask);
    parts.push_back(b.evolution->forward(interests, mask, input.features.at(b.target).emb));
    if (with_aux) {
      torch::Tensor term = AuxiliaryLoss(b, interests, input, first);
      aux = aux.defined() ? aux + term : term;
    }
  }
  for (const Behaviour& b : behaviours_) parts.push_back(input.features.at(b.target).emb);
  if (has_features()) parts.push_back(Flatten(input, features_));
  aux_loss_ = aux;
  return mlp_->forward(torch::cat(parts, 1)).squeeze(1);
}

torch::Tensor DIEN::AuxiliaryLoss(Behaviour& b, const torch::Tensor& interests, const ModelInput& input,
                                  int64_t first_step) {
  const FeatureInput& history = input.features[b.history];
  const FeatureInput& negative = SequenceInput(input, b.negative);
  TORCH_CHECK(negative.emb.sizes() == history.emb.sizes(), "DIEN: negative sequence \"",
              input.schema->features[b.negative].name, "\" has shape ", negative.emb.sizes(), ", its history ",
              history.emb.sizes());
  const int64_t steps = interests.size(1);
  if (steps < 2) return torch::zeros({}, interests.options());
  // h_t predicts the item of step t + 1: pairs (t, t + 1) with both steps real.
  torch::Tensor h = interests.narrow(1, 0, steps - 1);
  if (b.aux_projection) h = b.aux_projection->forward(h);
  torch::Tensor pairs = history.mask.narrow(1, first_step, steps - 1) &
                        history.mask.narrow(1, first_step + 1, steps - 1) &
                        negative.mask.narrow(1, first_step + 1, steps - 1);
  torch::Tensor pos_logit = (h * history.emb.narrow(1, first_step + 1, steps - 1)).sum(2);
  torch::Tensor neg_logit = (h * negative.emb.narrow(1, first_step + 1, steps - 1)).sum(2);
  // BCE(sigmoid(x), 1) = softplus(-x); BCE(sigmoid(x), 0) = softplus(x). Each mean over the pairs.
  torch::Tensor per_pair = torch::softplus(-pos_logit) + torch::softplus(neg_logit);
  return per_pair.masked_fill(pairs.logical_not(), 0).sum() / pairs.sum().clamp_min(1);
}

torch::Tensor DIEN::Loss(const torch::Tensor& outputs, const torch::Tensor& labels) {
  torch::Tensor loss = Model::Loss(outputs, labels);
  if (is_training() && aux_loss_.defined()) loss = loss + alpha_ * aux_loss_;
  return loss;
}

}  // namespace shardrec::models

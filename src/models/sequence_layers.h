#pragma once
// Building blocks of the behaviour-sequence models (DIN, BST, and DIEN may reuse them):
//   - which history is compared with which target, resolved from a model's config lists;
//   - the real (non-padding) positions of histories, gathered so that per-position work runs only
//     where there is an item;
//   - masked softmax over positions;
//   - DIN's activation unit (target attention scored by an MLP on [t, h, t - h, t * h]).
//
// Histories are sequence features with pooling CONCAT: ModelInput gives them as [B, L, D], zero at
// padded positions, with a [B, L] mask (true at real positions). ShardRec right-aligns them (most
// recent last), but nothing here depends on the alignment.
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "data/feature_schema.h"
#include "models/feature_inputs.h"
#include "models/layers.h"
#include "models/model.h"

namespace shardrec::models {

// ---------------------------------------------------------------------------------------------
// Histories and their targets

// One behaviour history and the candidate feature it is compared with (e.g. hist_item_id with
// item_id). Both have the same embedding dimension.
struct BehaviourPair {
  int history = -1;  // schema index: a sequence feature with pooling concat
  int target = -1;   // schema index: a sparse feature
  int64_t dim = 0;
  int64_t max_len = 0;  // the history's L
  std::string history_name, target_name;
};

struct BehaviourFeatures {
  std::vector<BehaviourPair> pairs;  // in config order
  // The other features (sparse, dense, mean/sum-pooled sequences) that go to the top MLP.
  // Empty (flat_dim 0) when there are none.
  FeatureGroup others;

  int64_t target_dim() const;  // sum of the pairs' dims
  bool has_others() const { return others.flat_dim > 0; }
};

// Resolves a model's lists. `prefix` is the model's config path (e.g. "model.din"); messages name
// the offending entry, e.g. "field model.din.target_features[1]: ...". An empty `others` list
// takes every sparse, dense and mean/sum-pooled sequence feature that is not a target. Throws
// ConfigError for: no histories, lists of different lengths, unknown names, a history that is not
// a concat-pooled sequence, a target that is not sparse, a dim mismatch within a pair, a history
// listed twice, and, with `same_length`, histories of different max_len (models that concatenate
// the histories step by step need one L).
BehaviourFeatures ResolveBehaviourFeatures(const data::FeatureSchema& schema, const std::vector<std::string>& histories,
                                           const std::vector<std::string>& targets,
                                           const std::vector<std::string>& others, const std::string& prefix,
                                           bool same_length);

// For protobuf repeated string fields.
template <typename Names>
BehaviourFeatures ResolveBehaviourFeatures(const data::FeatureSchema& schema, const Names& histories,
                                           const Names& targets, const Names& others, const std::string& prefix,
                                           bool same_length) {
  auto vec = [](const Names& n) { return std::vector<std::string>(n.begin(), n.end()); };
  return ResolveBehaviourFeatures(schema, vec(histories), vec(targets), vec(others), prefix, same_length);
}

// The targets' embeddings concatenated in pair order: [B, target_dim()].
torch::Tensor ConcatTargets(const ModelInput& input, const BehaviourFeatures& features);

// The histories concatenated step by step (one item vector per step, as BST and DIEN use them).
struct BehaviourSequence {
  torch::Tensor steps;    // [B, L, target_dim()], zero at padded steps
  torch::Tensor mask;     // [B, L] bool: a step is real where any history has an item
  torch::Tensor lengths;  // [B] int64: real steps per row
};
// Needs one max_len for every history (ResolveBehaviourFeatures(..., same_length=true)).
BehaviourSequence ConcatHistories(const ModelInput& input, const BehaviourFeatures& features);

// ---------------------------------------------------------------------------------------------
// Real positions

// The real positions of a [B, L] mask, in row-major order (so one row's positions are
// contiguous).
struct RealPositions {
  int64_t batch = 0, len = 0;
  torch::Tensor mask;     // [B, L] bool
  torch::Tensor flat;     // int64 [N]: index into the flattened B * L grid
  torch::Tensor row;      // int64 [N]: batch row of each position
  torch::Tensor offsets;  // int64 [B + 1]: row b owns positions [offsets[b], offsets[b + 1])
  int64_t count() const { return flat.size(0); }
};
RealPositions FindRealPositions(const torch::Tensor& mask);

// seq [B, L, ...] -> [N, ...] at the real positions.
torch::Tensor GatherReal(const torch::Tensor& seq, const RealPositions& positions);
// per_row [B, D] -> [N, D]: each batch row's vector at each of its real positions (e.g. the
// target next to every item of its history).
torch::Tensor RepeatPerRow(const torch::Tensor& per_row, const RealPositions& positions);
// values [N, D] -> [B, D]: the sum over each batch row's real positions (e.g. attention pooling).
torch::Tensor SumPerRow(const torch::Tensor& values, const RealPositions& positions);
// values [N] at the real positions -> [B, L], `fill` elsewhere.
torch::Tensor ScatterReal(const torch::Tensor& values, const RealPositions& positions, double fill);

// Softmax over dim 1 of scores [B, L] restricted to the mask's true positions; masked positions
// get weight 0, and a row without real positions is all zeros (never NaN, also in the gradient).
torch::Tensor MaskedSoftmax(const torch::Tensor& scores, const torch::Tensor& mask);

// ---------------------------------------------------------------------------------------------
// DIN activation unit

struct ActivationUnitOptions {
  std::vector<int64_t> units = {36};  // hidden widths of the scoring MLP
  ActivationKind activation = ActivationKind::kDice;
  // Normalise the weights with a softmax over each row's real positions (the reference's
  // use_softmax); the DIN paper keeps the raw scores.
  bool use_softmax = false;
};

// DIN's activation unit for one history field (reference: din.py ActivationUnit). Scores each
// history item h against the target t with an MLP on [t, h, t - h, t * h] (hidden layers Linear ->
// BatchNorm1d -> activation, then Linear(., 1)) and pools sum_l w_l h_l.
//
// Differences from the reference:
//   - Padding is masked: padded positions get no weight and take no part in the batch-norm
//     statistics (the reference scores them too, so its output and its training-mode statistics
//     change with the amount of padding).
//   - Computed, not concatenated. The first layer's W [t, h, t - h, t * h] is evaluated as
//     (W1 + W3) t + (W2 - W3) h + W4 (t * h): the target part once per batch row instead of once
//     per position, the per-position part [h, t * h] only at real positions (gathered). Each
//     hidden layer's Linear input projection (first layer), batch norm, activation and, for the
//     last one, the output Linear(., 1) run fused (fused_batch_norm_activation.h) instead of a
//     GEMM and a dozen elementwise tensor ops over [N, units]. Same parameters and the same
//     function as the reference's formulation (bench/models/din_attention_bench compares them).
// Parameters (names as in MLP, so checkpoints and tests read them alike): linear<i>
// (linear0.weight is [units[0], 4 D] over [t, h, t - h, t * h]), bn<i>, act<i>, out.
class ActivationUnitImpl : public torch::nn::Module {
 public:
  ActivationUnitImpl(int64_t dim, ActivationUnitOptions options);

  // target [B, D], history [B, L, D] (zero at padding), mask [B, L] -> pooled [B, D].
  torch::Tensor forward(const torch::Tensor& target, const torch::Tensor& history, const torch::Tensor& mask);

  // The same with the real positions found already (histories of one mask can share them).
  torch::Tensor Pool(const torch::Tensor& target, const torch::Tensor& history, const RealPositions& positions);

  // The attention weights [B, L], 0 at padding (softmax-normalised with use_softmax).
  torch::Tensor Weights(const torch::Tensor& target, const torch::Tensor& history, const torch::Tensor& mask);

  // The weights at `positions` only: [N]. `history_real` = GatherReal(history, positions).
  torch::Tensor RealWeights(const torch::Tensor& target, const torch::Tensor& history_real,
                            const RealPositions& positions);

  int64_t dim() const { return dim_; }
  const ActivationUnitOptions& options() const { return options_; }
  // The scoring MLP as an MlpOptions (for code that rebuilds it, e.g. tests).
  MlpOptions mlp_options() const;

 private:
  struct Hidden {
    torch::nn::Linear linear{nullptr};
    torch::nn::BatchNorm1d bn{nullptr};
    Activation act{nullptr};
  };
  // Raw scores [N] at the real positions.
  torch::Tensor Scores(const torch::Tensor& target, const torch::Tensor& history_real, const RealPositions& positions);
  // act(bn(x + row_bias per row)) [N, U] with x = z, or x = z w_in^T when w_in is given; for the
  // last hidden layer the output layer's score [N].
  torch::Tensor BatchNormActivation(Hidden& layer, const torch::Tensor& z, const torch::Tensor& w_in,
                                    const torch::Tensor& row_bias, const torch::Tensor& offsets, bool last);

  int64_t dim_;
  ActivationUnitOptions options_;
  std::vector<Hidden> hidden_;
  torch::nn::Linear out_{nullptr};
};
TORCH_MODULE(ActivationUnit);

}  // namespace shardrec::models

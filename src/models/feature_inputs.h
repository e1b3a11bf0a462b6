#pragma once
// Which features a part of a model reads, and how they are laid out for it. A part (the wide
// side, the deep side, the FM side...) names its features in the config; the names resolve once,
// at construction, to a FeatureGroup, and each forward assembles the group's input tensor with
// one batched op:
//   Flatten: [B, sum dims + #dense] = cat(embeddings in list order, then dense values in list
//            order), the reference EmbeddingLayer(squeeze_dim=True) layout;
//   Stack:   [B, F, D], the reference EmbeddingLayer(squeeze_dim=False) layout.
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "data/feature_schema.h"
#include "models/model.h"

namespace shardrec::models {

enum class FeatureUse {
  // MLP / linear inputs: sparse features, sequences pooled by mean or sum, and dense features.
  kFlat,
  // Field-interaction inputs ([B, F, D]): sparse features and mean/sum-pooled sequences, all of
  // one embedding dimension. No dense features, no concat sequences.
  kStacked,
};

struct FeatureGroup {
  std::vector<int> embedded;           // schema indices of sparse / pooled sequence features
  std::vector<std::string> names;      // their names (for messages)
  std::vector<int64_t> dims;           // their embedding dimensions
  std::vector<int64_t> dense_columns;  // columns of ModelInput::dense, in list order
  int64_t flat_dim = 0;                // width of Flatten(): sum of embedding dims + #dense
  int64_t embed_dim = 0;               // the common dimension (kStacked); 0 for kFlat

  int64_t num_fields() const { return static_cast<int64_t>(embedded.size()); }

  // Set by ResolveFeatures: how to read the dense columns without a gather when possible.
  int64_t dense_first = 0;     // dense_columns are [dense_first, dense_first + n) ...
  bool dense_is_range = true;  // ... when this is true
  torch::Tensor dense_index;   // int64 [n] for index_select otherwise
};

// Resolves the names a config lists for one part. An empty list means every feature of the
// schema the part can take, in schema order. `field` names the config field in messages (e.g.
// "model.deepfm.fm_features"). Throws ConfigError for an unknown name, a feature the part cannot
// take, mixed dimensions in a kStacked group, or a group that ends up empty.
FeatureGroup ResolveFeatures(const data::FeatureSchema& schema, const std::vector<std::string>& names,
                             FeatureUse use, const std::string& field);

// Convenience for protobuf repeated string fields and other ranges of strings.
template <typename Names>
FeatureGroup ResolveFeatures(const data::FeatureSchema& schema, const Names& names, FeatureUse use,
                             const std::string& field) {
  return ResolveFeatures(schema, std::vector<std::string>(names.begin(), names.end()), use, field);
}

// [B, group.flat_dim]. Returns the input tensor itself (no copy) when the group is one embedding
// or exactly the whole dense matrix.
torch::Tensor Flatten(const ModelInput& input, const FeatureGroup& group);

// [B, F, D]: the group's embeddings stacked (kStacked groups; any group of one dimension
// without dense features).
torch::Tensor Stack(const ModelInput& input, const FeatureGroup& group);

}  // namespace shardrec::models

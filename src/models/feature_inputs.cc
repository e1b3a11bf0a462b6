#include "models/feature_inputs.h"

#include <torch/torch.h>

#include "common/error.h"

namespace shardrec::models {
namespace {

using data::FeatureKind;
using data::FeatureSpec;
using data::Pooling;

// Why `use` cannot take `spec`, or "" when it can.
std::string Unfit(const FeatureSpec& spec, FeatureUse use) {
  switch (spec.kind) {
    case FeatureKind::kSparse:
      return "";
    case FeatureKind::kSequence:
      return spec.pooling == Pooling::kConcat
                 ? "is a sequence with concat pooling ([B, L, D]); this part takes only one vector per "
                   "feature (sparse features, mean/sum-pooled sequences)"
                 : "";
    case FeatureKind::kDense:
      return use == FeatureUse::kFlat ? ""
                                      : "is dense; this part takes sparse features and mean/sum-pooled "
                                        "sequences of one embedding dimension";
  }
  return "has an unknown kind";
}

int FindFeature(const data::FeatureSchema& schema, const std::string& name) {
  for (size_t i = 0; i < schema.features.size(); ++i) {
    if (schema.features[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

const FeatureInput& EmbeddedInput(const ModelInput& input, const FeatureGroup& group, size_t k) {
  const int f = group.embedded[k];
  TORCH_CHECK(f < static_cast<int>(input.features.size()) && input.features[f].emb.defined(),
              "model input has no embedding for feature \"", group.names[k], "\"");
  return input.features[f];
}

}  // namespace

FeatureGroup ResolveFeatures(const data::FeatureSchema& schema, const std::vector<std::string>& names,
                             FeatureUse use, const std::string& field) {
  std::vector<int> picked;
  if (names.empty()) {
    for (size_t i = 0; i < schema.features.size(); ++i) {
      if (Unfit(schema.features[i], use).empty()) picked.push_back(static_cast<int>(i));
    }
  } else {
    for (const std::string& name : names) {
      const int f = FindFeature(schema, name);
      if (f < 0) throw ConfigError("field " + field + ": unknown feature \"" + name + "\"");
      const std::string why = Unfit(schema.features[f], use);
      if (!why.empty()) throw ConfigError("field " + field + ": feature \"" + name + "\" " + why);
      picked.push_back(f);
    }
  }
  if (picked.empty()) {
    throw ConfigError("field " + field + ": no features for this part (the schema has none it can take)");
  }

  FeatureGroup g;
  const FeatureSpec* first_embedded = nullptr;
  for (int f : picked) {
    const FeatureSpec& spec = schema.features[f];
    if (spec.kind == FeatureKind::kDense) {
      g.dense_columns.push_back(spec.dense_index);
      g.flat_dim += 1;
      continue;
    }
    if (use == FeatureUse::kStacked) {
      if (first_embedded == nullptr) {
        first_embedded = &spec;
      } else if (spec.dim != first_embedded->dim) {
        throw ConfigError("field " + field + ": features must share one embedding dimension, but \"" +
                          first_embedded->name + "\" has " + std::to_string(first_embedded->dim) + " and \"" +
                          spec.name + "\" has " + std::to_string(spec.dim) +
                          (names.empty() ? " (list this part's features explicitly)" : ""));
      }
      g.embed_dim = spec.dim;
    }
    g.embedded.push_back(f);
    g.names.push_back(spec.name);
    g.dims.push_back(spec.dim);
    g.flat_dim += spec.dim;
  }

  const auto n = static_cast<int64_t>(g.dense_columns.size());
  if (n > 0) {
    g.dense_first = g.dense_columns[0];
    for (int64_t i = 0; i < n; ++i) g.dense_is_range &= g.dense_columns[i] == g.dense_first + i;
    if (!g.dense_is_range) g.dense_index = torch::tensor(g.dense_columns, torch::kLong);
  }
  return g;
}

torch::Tensor Flatten(const ModelInput& input, const FeatureGroup& group) {
  std::vector<torch::Tensor> parts;
  parts.reserve(group.embedded.size() + 1);
  const int64_t batch = input.batch_size();
  for (size_t k = 0; k < group.embedded.size(); ++k) {
    const torch::Tensor& emb = EmbeddedInput(input, group, k).emb;
    TORCH_CHECK(emb.dim() == 2 && emb.size(1) == group.dims[k] && (batch == 0 || emb.size(0) == batch),
                "feature \"", group.names[k], "\": expected an embedding [", batch, ", ", group.dims[k], "], got ",
                emb.sizes());
    parts.push_back(emb);
  }
  if (!group.dense_columns.empty()) {
    const torch::Tensor& dense = input.dense;
    const auto n = static_cast<int64_t>(group.dense_columns.size());
    TORCH_CHECK(dense.defined() && dense.dim() == 2, "model input has no dense matrix [B, num_dense]");
    if (!group.dense_is_range) {
      parts.push_back(dense.index_select(1, group.dense_index.to(dense.device())));
    } else if (group.dense_first == 0 && n == dense.size(1)) {
      parts.push_back(dense);
    } else {
      parts.push_back(dense.narrow(1, group.dense_first, n));
    }
  }
  if (parts.size() == 1) return parts[0];
  return torch::cat(parts, 1);
}

torch::Tensor Stack(const ModelInput& input, const FeatureGroup& group) {
  TORCH_CHECK(group.dense_columns.empty(), "Stack: the feature group holds dense features");
  std::vector<torch::Tensor> parts;
  parts.reserve(group.embedded.size());
  for (size_t k = 0; k < group.embedded.size(); ++k) {
    const torch::Tensor& emb = EmbeddedInput(input, group, k).emb;
    TORCH_CHECK(emb.dim() == 2 && emb.size(1) == group.dims[k], "feature \"", group.names[k],
                "\": expected an embedding [B, ", group.dims[k], "], got ", emb.sizes());
    parts.push_back(emb);
  }
  if (parts.size() == 1) return parts[0].unsqueeze(1);
  return torch::stack(parts, 1);
}

}  // namespace shardrec::models

#include "models/afm.h"

#include "common/error.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {
namespace {

// The reference's t = 64: one attention layer of 64 units.
const std::vector<int64_t> kDefaultAttentionUnits = {64};

AttentionalPoolingOptions PoolingOptions(const config::Afm& config, const FeatureGroup& fields) {
  if (fields.num_fields() < 2) {
    throw ConfigError("field model.afm.features: AFM needs at least two fields to interact, got " +
                      std::to_string(fields.num_fields()));
  }
  AttentionalPoolingOptions o;
  o.num_fields = fields.num_fields();
  o.embed_dim = fields.embed_dim;
  o.attention_units.assign(config.attention_units().begin(), config.attention_units().end());
  if (o.attention_units.empty()) o.attention_units = kDefaultAttentionUnits;
  for (size_t k = 0; k < o.attention_units.size(); ++k) {
    if (o.attention_units[k] < 1) {
      throw ConfigError("field model.afm.attention_units[" + std::to_string(k) + "]: must be >= 1, got " +
                        std::to_string(o.attention_units[k]));
    }
  }
  o.dropout = config.dropout_rate();
  if (!(o.dropout >= 0 && o.dropout < 1)) {
    throw ConfigError("field model.afm.dropout_rate: must be in [0, 1), got " + std::to_string(o.dropout));
  }
  return o;
}

}  // namespace

AFM::AFM(const config::Afm& config, const data::FeatureSchema& schema)
    : fields_(ResolveFeatures(schema, config.features(), FeatureUse::kStacked, "model.afm.features")) {
  AttentionalPoolingOptions options = PoolingOptions(config, fields_);
  linear_ = register_module("linear", LR(fields_.flat_dim));
  pooling_ = register_module("pooling", AttentionalPooling(std::move(options)));
}

torch::Tensor AFM::forward(const ModelInput& input) {
  torch::Tensor v = Stack(input, fields_);  // [B, F, D], contiguous
  torch::Tensor y = linear_->forward(v.view({v.size(0), -1})) + pooling_->forward(v);
  return y.squeeze(1);
}

}  // namespace shardrec::models

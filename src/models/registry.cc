// CreateModel: one table entry per model kind of config::Model's oneof.
#include <functional>
#include <memory>
#include <string>

#include "common/error.h"
#include "models/deepfm.h"
#include "models/model.h"
#include "models/wide_deep.h"
#include "shardrec/config.pb.h"

namespace shardrec::models {
namespace {

struct ModelEntry {
  config::Model::KindCase kind;
  const char* name;  // the oneof field
  std::function<std::shared_ptr<Model>(const config::Model&, const data::FeatureSchema&)> create;
};

// To add a model: one line here (and its header above).
const ModelEntry kModels[] = {
    {config::Model::kWideDeep, "wide_deep",
     [](const config::Model& c, const data::FeatureSchema& s) { return std::make_shared<WideDeep>(c.wide_deep(), s); }},
    {config::Model::kDeepfm, "deepfm",
     [](const config::Model& c, const data::FeatureSchema& s) { return std::make_shared<DeepFM>(c.deepfm(), s); }},
};

std::string KnownModels() {
  std::string names;
  for (const ModelEntry& e : kModels) names += (names.empty() ? "" : ", ") + std::string(e.name);
  return names;
}

}  // namespace

std::shared_ptr<Model> CreateModel(const config::Model& config, const data::FeatureSchema& schema) {
  if (config.kind_case() == config::Model::KIND_NOT_SET) {
    throw ConfigError("field model: no model given (set one of: " + KnownModels() + ")");
  }
  for (const ModelEntry& e : kModels) {
    if (e.kind == config.kind_case()) return e.create(config, schema);
  }
  throw ConfigError("field model: model kind " + std::to_string(static_cast<int>(config.kind_case())) +
                    " is not implemented (implemented: " + KnownModels() + ")");
}

}  // namespace shardrec::models

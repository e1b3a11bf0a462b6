// CreateModel: one table entry per model kind of config::Model's oneof.
#include <functional>
#include <memory>
#include <string>

#include "common/error.h"
#include "models/afm.h"
#include "models/dcn.h"
#include "models/dcnv2.h"
#include "models/deepfm.h"
#include "models/dien.h"
#include "models/dssm.h"
#include "models/din.h"
#include "models/bst.h"
#include "models/edcn.h"
#include "models/facebook_dssm.h"
#include "models/fibinet.h"
#include "models/gru4rec.h"
#include "models/mind.h"
#include "models/narm.h"
#include "models/sasrec.h"
#include "models/model.h"
#include "models/esmm.h"
#include "models/mmoe.h"
#include "models/ple.h"
#include "models/shared_bottom.h"
#include "models/wide_deep.h"
#include "models/youtube_dnn.h"
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
    {config::Model::kDin, "din",
     [](const config::Model& c, const data::FeatureSchema& s) { return std::make_shared<Din>(c.din(), s); }},
    {config::Model::kBst, "bst",
     [](const config::Model& c, const data::FeatureSchema& s) { return std::make_shared<Bst>(c.bst(), s); }},
    {config::Model::kDien, "dien",
     [](const config::Model& c, const data::FeatureSchema& s) { return std::make_shared<DIEN>(c.dien(), s); }},
    {config::Model::kDcn, "dcn",
     [](const config::Model& c, const data::FeatureSchema& s) { return std::make_shared<Dcn>(c.dcn(), s); }},
    {config::Model::kDcnv2, "dcnv2",
     [](const config::Model& c, const data::FeatureSchema& s) { return std::make_shared<DcnV2>(c.dcnv2(), s); }},
    {config::Model::kEdcn, "edcn",
     [](const config::Model& c, const data::FeatureSchema& s) { return std::make_shared<Edcn>(c.edcn(), s); }},
    {config::Model::kAfm, "afm",
     [](const config::Model& c, const data::FeatureSchema& s) { return std::make_shared<AFM>(c.afm(), s); }},
    {config::Model::kFibinet, "fibinet",
     [](const config::Model& c, const data::FeatureSchema& s) { return std::make_shared<FiBiNet>(c.fibinet(), s); }},
    {config::Model::kDssm, "dssm",
     [](const config::Model& c, const data::FeatureSchema& s) { return std::make_shared<Dssm>(c.dssm(), s); }},
    {config::Model::kFacebookDssm, "facebook_dssm",
     [](const config::Model& c, const data::FeatureSchema& s) { return std::make_shared<FacebookDssm>(c.facebook_dssm(), s); }},
    {config::Model::kYoutubeDnn, "youtube_dnn",
     [](const config::Model& c, const data::FeatureSchema& s) { return std::make_shared<YoutubeDnn>(c.youtube_dnn(), s); }},
    {config::Model::kGru4Rec, "gru4rec",
     [](const config::Model& c, const data::FeatureSchema& s) { return std::make_shared<Gru4Rec>(c.gru4rec(), s); }},
    {config::Model::kNarm, "narm",
     [](const config::Model& c, const data::FeatureSchema& s) { return std::make_shared<Narm>(c.narm(), s); }},
    {config::Model::kSasrec, "sasrec",
     [](const config::Model& c, const data::FeatureSchema& s) { return std::make_shared<SasRec>(c.sasrec(), s); }},
    {config::Model::kMind, "mind",
     [](const config::Model& c, const data::FeatureSchema& s) { return std::make_shared<Mind>(c.mind(), s); }},
    {config::Model::kSharedBottom, "shared_bottom",
     [](const config::Model& c, const data::FeatureSchema& s) { return std::make_shared<SharedBottom>(c.shared_bottom(), s); }},
    {config::Model::kEsmm, "esmm",
     [](const config::Model& c, const data::FeatureSchema& s) { return std::make_shared<Esmm>(c.esmm(), s); }},
    {config::Model::kMmoe, "mmoe",
     [](const config::Model& c, const data::FeatureSchema& s) { return std::make_shared<Mmoe>(c.mmoe(), s); }},
    {config::Model::kPle, "ple",
     [](const config::Model& c, const data::FeatureSchema& s) { return std::make_shared<Ple>(c.ple(), s); }},
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

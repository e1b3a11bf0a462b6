#include "models/dssm.h"

#include "shardrec/config.pb.h"

namespace shardrec::models {

Dssm::Dssm(const config::Dssm& config, const data::FeatureSchema& schema)
    : TwoTowerModel(TwoTowerSpec(config, "model.dssm"), schema) {}

}  // namespace shardrec::models

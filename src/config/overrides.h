#pragma once
// `--set field.path=value`: replaces one field of a parsed job (a repeated field is replaced as a
// whole: `--set model.deepfm.mlp.dims=[512,256]`; an element of a repeated message is picked by
// its name: `--set features[C1].dim=8`).
#include <string>

#include "config/config_locator.h"
#include "shardrec/config.pb.h"

namespace shardrec::config {

void ApplyOverride(Job* job, const std::string& assignment, ConfigLocator* locator);

}  // namespace shardrec::config

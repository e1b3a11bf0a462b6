#pragma once
// Semantic checks on a parsed job: required values, ranges, references between features and
// tables, and whether the chosen model can take the features it is given.
#include "config/config_locator.h"
#include "shardrec/config.pb.h"

namespace shardrec::config {

void ValidateJob(const Job& job, const ConfigLocator& locator);

}  // namespace shardrec::config

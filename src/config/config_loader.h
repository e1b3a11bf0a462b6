#pragma once
// Loads a job config: protobuf text format, then `--set path=value` overrides, then validation.
// Every problem is a ConfigError that names file, line, column and field.
#include <string>
#include <vector>

#include "shardrec/config.pb.h"

namespace shardrec::config {

// Reads and validates `path`; `overrides` are "field.path=value" strings applied in order.
Job LoadJob(const std::string& path, const std::vector<std::string>& overrides = {});

// The same for config text held in memory; `filename` is used in error messages.
Job ParseJob(const std::string& text, const std::string& filename,
             const std::vector<std::string>& overrides = {});

}  // namespace shardrec::config

#pragma once
// The manifest of a shard directory: which tables its rows belong to (name, dim, floats per row,
// optimizer kind), so that a directory is never opened with tables it was not written for.
#include <string>
#include <vector>

#include "ps/table_spec.h"

namespace shardrec::ps {

struct ManifestTable {
  std::string name;
  int dim = 0;
  int stride = 0;         // floats per row: weights + optimizer state
  std::string optimizer;  // OptimizerName(kind)
};

const char* OptimizerName(OptimizerSpec::Kind kind);

// File name of the manifest inside a shard directory.
inline constexpr const char* kShardManifestFile = "shard.manifest";

std::vector<ManifestTable> ManifestTables(const std::vector<TableSpec>& tables);

// When `dir` has no manifest, writes one for `tables` (atomically). Otherwise checks that it
// describes exactly `tables`, and throws std::runtime_error naming the first table that differs
// and what differs.
void CheckOrWriteManifest(const std::string& dir, const std::vector<ManifestTable>& tables);

}  // namespace shardrec::ps

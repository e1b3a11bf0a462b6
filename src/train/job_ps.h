#pragma once
// The parameter servers a job's trainer talks to, for every trainer (ranking, matching) and for
// `shardrec eval` / `export`.
#include <memory>
#include <string>

#include "data/feature_schema.h"
#include "ps/ps_client.h"
#include "shardrec/config.pb.h"

namespace shardrec::train {

// The embedded shards' RocksDB folder: ps.data_dir, else <run_dir>/ps; "" when the rows live in
// memory only or on remote servers.
std::string EmbeddedPsDir(const config::Job& job, const std::string& run_dir);

// Remote shards when ps.addresses are given, else the embedded shards. `fresh`: a new run starts
// from fresh tables (rows an earlier run left in the default folder are removed; an explicitly
// named folder that holds rows is refused rather than mixed into new dense weights); otherwise
// the shards are reopened as a finished run (or a restored checkpoint) left them. Throws UserError.
std::unique_ptr<ps::PsClient> OpenJobPs(const config::Job& job, const data::FeatureSchema& schema, const std::string& run_dir,
                                        bool fresh);

}  // namespace shardrec::train

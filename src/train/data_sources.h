#pragma once
// Where a job's train/validation/test rows come from: files named in the config, or synthetic
// data generated once into a cache folder. Each part becomes pipeline options plus a file list.
#include <string>
#include <vector>

#include "data/pipeline.h"
#include "shardrec/config.pb.h"

namespace shardrec::train {

struct DataPart {
  std::vector<std::string> files;
  data::PipelineOptions options;  // format, split; batch size and shuffle are set by the trainer
  bool present() const { return !files.empty(); }
};

struct DataSources {
  DataPart train, validation, test;
  int64_t approx_train_rows = 0;  // for the ETA; 0 when unknown
};

// Generates synthetic data under `output_dir` when the job asks for it (reusing an earlier
// generation with the same options).
DataSources ResolveDataSources(const config::Job& job, const std::string& output_dir);

}  // namespace shardrec::train

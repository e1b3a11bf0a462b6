#pragma once
// The matching (recall) training loop, for jobs with a `matching` block and a recall model
// (models::MatchModel). Per step:
//   1. the batch comes prefetched (ids deduplicated per table, rows pulled) as for ranking;
//   2. its positive rows (first label > 0.5) get negatives: num_sampled catalogue items each,
//      drawn from count^popularity_power, never the row's own item (sampled), and/or the other
//      positive rows' items (in-batch; rows with the same item masked);
//   3. the sampled items' feature ids come from the catalogue; ids the batch already holds use
//      the batch's rows, the others are pulled in one PS call per table (CatalogInput);
//   4. user tower over the training rows, item tower over [their own items; the distinct sampled
//      items] in one pass (popular items are drawn many times; their vectors are gathered per
//      draw, so batch-norm statistics count each drawn item once); scores via
//      MatchModel::Score; optional log-Q correction;
//   5. loss: point-wise BCE (every row's own item with its label, negatives 0), pair-wise BPR or
//      hinge, or list-wise softmax CE (positive rows only), plus auxiliary task losses;
//   6. backward; the gradients of the batch's rows and of the pulled negative rows are pushed
//      (disjoint id sets, one push per table each), then the dense optimizer steps.
// Validation runs retrieval (retrieval.h) each epoch; matching.retrieval.metric picks the best
// epoch (dense weights and, with RocksDB-backed embedded shards, PS rows are rolled back to it)
// and drives early stopping; the test split is evaluated at the end. Writes dense.pt and
// metrics.json like train::Trainer (validation/test hold the retrieval metrics).
// One worker, synchronous pushes (ps.consistency ASYNC is not used here).
#include <memory>
#include <string>

#include "data/feature_schema.h"
#include "models/match_model.h"
#include "ps/ps_client.h"
#include "shardrec/config.pb.h"
#include "train/job_ps.h"
#include "train/data_sources.h"
#include "train/item_catalog.h"
#include "train/match_loss.h"
#include "train/retrieval.h"
#include "train/trainer.h"

namespace shardrec::train {

// A job's matching block resolved against its schema and model.
struct MatchingSetup {
  models::MatchLoss mode = models::MatchLoss::kListwise;
  PairLoss pair_loss = PairLoss::kBpr;
  double margin = 0.1;
  bool sampled = true, in_batch = false, logq = false;
  int num_sampled = 3;
  double popularity_power = 0.75;
  uint64_t sampler_seed = 0;
  int item_key = -1;  // schema index of the catalogue key
  RetrievalOptions retrieval;
  std::string metric = "recall@10";  // validation metric of the best epoch
};

// Throws ConfigError for a model that is not a recall model or names that do not resolve.
MatchingSetup ResolveMatching(const config::Job& job, const data::FeatureSchema& schema, const models::MatchModel& model);

// The recall model of a job: CreateModel, which must give a models::MatchModel.
std::shared_ptr<models::MatchModel> CreateMatchModel(const config::Job& job, const data::FeatureSchema& schema);


// A finished matching run opened again (shardrec eval / export): its job, schema, data sources
// (generated data is found under the run folder), the model with the run's dense.pt, its PS
// shards (reopened; the eval pulls are read-only) and the catalogue read from the data.
struct MatchingRun {
  config::Job job;
  std::string run_dir;
  data::FeatureSchema schema;
  DataSources sources;
  std::shared_ptr<models::MatchModel> model;
  std::unique_ptr<ps::PsClient> ps;
  MatchingSetup setup;
  std::unique_ptr<ItemCatalog> catalog;
};

// Throws UserError when the run folder lacks dense.pt or PS rows, ConfigError for a bad job.
std::unique_ptr<MatchingRun> OpenMatchingRun(const config::Job& job, const std::string& run_dir);

class MatchTrainer {
 public:
  MatchTrainer(config::Job job, std::string output_dir);
  ~MatchTrainer();

  TrainReport Run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardrec::train

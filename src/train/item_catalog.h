#pragma once
// The item catalogue of a matching job: every item seen in the data, keyed by its id (the
// matching.item_feature), with the ids and dense values of every item feature the model reads
// (from the item's first row), and how often it is a positive in the training data. Negative
// sampling draws from it; retrieval ranks all of it.
//
// CatalogInput turns a list of catalogue items into model input for the item tower: their
// feature ids deduplicated per table, the ids a training batch already holds served from that
// batch's rows (so one id never has two rows in a step and its gradient is pushed once), the
// others pulled from the PS in one call per table.
#include <torch/torch.h>

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "data/batch.h"
#include "data/feature_schema.h"
#include "models/model.h"
#include "ps/ps_client.h"
#include "train/data_sources.h"
#include "train/prepared_batch.h"

namespace shardrec::train {

class ItemCatalog {
 public:
  // `item_features`: schema indices of the features the item tower reads (sparse, mean/sum-pooled
  // sequences, dense). `key_feature`: the sparse feature whose id identifies an item. Throws
  // ConfigError for a concat-pooled item feature or a key that is not sparse.
  ItemCatalog(const data::FeatureSchema& schema, std::vector<int> item_features, int key_feature);

  // Adds the items of `batch` that are new (a row without a key id is skipped). With
  // `count_positives`, each row whose first label is > 0.5 adds 1 to its item's count.
  void AddBatch(const data::Batch& batch, bool count_positives);

  // Reads the parts (every row: train counts positives, validation and test only add items).
  void AddParts(const DataSources& sources, int reader_threads);

  int64_t size() const { return static_cast<int64_t>(ids_.size()); }
  int64_t id(int64_t item) const { return ids_[item]; }
  const std::vector<int64_t>& ids() const { return ids_; }
  int64_t Find(int64_t id) const;  // catalogue index, or -1
  const std::vector<int64_t>& counts() const { return counts_; }
  int64_t total_count() const { return total_count_; }

  const std::vector<int>& item_features() const { return item_features_; }
  int key_feature() const { return key_; }
  // Ids of the k-th item feature (k indexes item_features()) of `item`.
  const int64_t* feature_ids(size_t k, int64_t item, int64_t* n) const;
  // Value of the k-th item feature when it is dense.
  float dense_value(size_t k, int64_t item) const { return dense_[k][item]; }

 private:
  const data::FeatureSchema& schema_;
  std::vector<int> item_features_;
  int key_;
  std::vector<int64_t> ids_, counts_;
  int64_t total_count_ = 0;
  std::unordered_map<int64_t, int64_t> index_;
  std::vector<data::SparseColumn> sparse_;  // per item feature (sparse/sequence), jagged over items
  std::vector<std::vector<float>> dense_;   // per item feature (dense), one value per item
};

class CatalogInput {
 public:
  CatalogInput(const data::FeatureSchema& schema, const ItemCatalog& catalog);

  // Indexes `items` (catalogue indices) and pulls the rows of their ids that `batch` (may be
  // null) does not hold: one Pull per table, `read_only` for evaluation.
  void Prepare(const int64_t* items, int64_t n, const PreparedBatch* batch, ps::PsClient* ps, bool read_only);

  // Model input of the prepared items: item features only (dense columns of other features 0).
  // `batch_rows`: the batch's row leaves (AssembledBatch::rows) when Prepare had a batch. The
  // pulled rows become leaves of their own, requiring grad when asked.
  models::ModelInput Assemble(const std::vector<torch::Tensor>& batch_rows, bool requires_grad);

  // Per table: the ids pulled by the last Prepare and their leaf [n + 1, D] (last row zero),
  // whose gradient rows [0, n) are what to push. Undefined leaf for tables without item features.
  const std::vector<int64_t>& pulled_ids(int table) const { return tables_[table].ids; }
  const torch::Tensor& leaf(int table) const { return leaves_[table]; }

 private:
  const data::FeatureSchema& schema_;
  const ItemCatalog& catalog_;
  struct Table {
    bool used = false;
    std::vector<int64_t> ids;  // pulled ids, first-occurrence order
    std::vector<float> rows;   // (ids.size() + 1) * dim, last row zero
    IdIndex index;
    int64_t batch_rows = 0;    // rows of the batch's leaf before ours (U + 1), 0 without a batch
  };
  struct Feature {
    std::vector<int64_t> positions, offsets, lengths;
  };
  std::vector<Table> tables_;
  std::vector<Feature> features_;  // per item feature
  std::vector<torch::Tensor> leaves_;
  std::vector<int64_t> items_;  // of the last Prepare
  int64_t rows_ = 0;
};

}  // namespace shardrec::train

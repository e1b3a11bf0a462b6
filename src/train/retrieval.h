#pragma once
// Retrieval evaluation of a matching model: item vectors for the whole catalogue (item tower over
// every catalogue item, rows pulled read-only from the PS), user vectors for the queries of an
// evaluation split (leave-last-out: each user's last positive row, its item the target), top-K
// by exact matrix products in blocks or by a faiss index, and Recall/Hit/NDCG/MRR@K.
//
// Ranking: by score <u, i> (the temperature does not change an order); a multi-interest user
// (MIND, [I, D]) scores an item by its best interest, i.e. every interest queries and the lists
// merge by maximum. Exact top-K breaks ties by the lower catalogue index.
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "data/feature_schema.h"
#include "models/match_model.h"
#include "ps/ps_client.h"
#include "train/data_sources.h"
#include "train/item_catalog.h"

namespace shardrec::train {

// Catalogue items to leave out of each query's ranking: query q drops
// items[offsets[q], offsets[q + 1]). A null Exclusions excludes nothing.
struct Exclusions {
  const int64_t* items = nullptr;
  const int64_t* offsets = nullptr;
};

struct TopK {
  torch::Tensor items;   // [Q, K] int64 catalogue indices, best first; -1 where fewer remain
  torch::Tensor scores;  // [Q, K] float, -inf at -1
};

// Item vectors [N, D] of the whole catalogue through model.ItemEmbedding, `batch_size` items per
// forward, rows pulled read-only. The caller puts the model in eval mode.
torch::Tensor CatalogEmbeddings(models::MatchModel& model, const data::FeatureSchema& schema, const ItemCatalog& catalog,
                                ps::PsClient* ps, int64_t batch_size);

// Exact top-k of users [Q, D] or [Q, I, D] against items [N, D]: at most min(query_batch, 512)
// queries times `item_block` items per matrix product (a cache-sized tile of scores: 4 MiB by
// default, about 3x faster than 128 MiB tiles on 1M items), each tile scanned once into the
// queries' running top-k heaps (queries in parallel).
TopK ExactTopK(const torch::Tensor& items, const torch::Tensor& users, int64_t k, const Exclusions* exclusions,
               int64_t query_batch, int64_t item_block = 2048);

// The same through a faiss index built from `items` (faiss::index_factory description, inner
// product metric; IVF indexes are trained on the items and search `nprobe` lists). Throws
// UserError when this build has no faiss.
// `seconds`, when given, receives {index build (train + add), search and merge}.
TopK FaissTopK(const torch::Tensor& items, const torch::Tensor& users, int64_t k, const Exclusions* exclusions,
               const std::string& index_description, int nprobe, int64_t query_batch,
               std::pair<double, double>* seconds = nullptr);
bool FaissAvailable();

// The queries of one evaluation split.
struct QueryOptions {
  bool last_positive_per_user = true;
  int user_feature = -1;     // schema index (for last_positive_per_user)
  int history_feature = -1;  // schema index of the history whose items are excluded; -1: none
  int64_t max_queries = 0;   // 0: all (else the first ones, in file order of their rows)
  int64_t batch_size = 8192;
  int prefetch_depth = 2;
};

struct QuerySet {
  torch::Tensor users;                              // [Q, D] or [Q, I, D]
  std::vector<int64_t> targets, target_offsets;     // catalogue indices, per query
  std::vector<int64_t> excluded, excluded_offsets;  // per query; offsets empty: no exclusions
  // Every row of the split: the predictions of model.Predict(forward) (own item score, and the
  // auxiliary tasks) and the labels, for AUC and the auxiliary tasks' metrics.
  int tasks = 1;
  std::vector<float> predictions, labels;  // rows * tasks, rows * num_labels
  int num_labels = 1;
  int64_t rows = 0;

  int64_t size() const { return static_cast<int64_t>(target_offsets.size()) - 1; }
  Exclusions exclusions() const {
    return excluded_offsets.empty() ? Exclusions{} : Exclusions{excluded.data(), excluded_offsets.data()};
  }
};

// Reads `part` once (eval mode, no grad, rows pulled read-only): user vectors of the query rows
// (positive rows whose item is in the catalogue), their targets and exclusions, and every row's
// predictions.
QuerySet ReadQueries(models::MatchModel& model, const data::FeatureSchema& schema, const DataPart& part, ps::PsClient* ps,
                     const ItemCatalog& catalog, const QueryOptions& options);

struct RetrievalOptions {
  QueryOptions queries;
  std::vector<int> top_k = {10, 50, 100};
  bool faiss = false;
  std::string faiss_index = "Flat";
  int faiss_nprobe = 16;
  int64_t query_batch = 1024;
  int64_t item_batch = 8192;
};

// Everything above for one split: "recall@K", "hit@K", "ndcg@K", "mrr@K", "queries", "items",
// "auc" (own-item score vs label over all rows), per auxiliary task "auc_<label>" or
// "mse_<label>", and "retrieval_seconds". Puts the model in eval mode and back in train mode.
std::map<std::string, double> EvaluateRetrieval(models::MatchModel& model, const data::FeatureSchema& schema,
                                                const DataPart& part, ps::PsClient* ps, const ItemCatalog& catalog,
                                                const RetrievalOptions& options);

}  // namespace shardrec::train

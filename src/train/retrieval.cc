#include "train/retrieval.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <numeric>
#include <unordered_map>
#include <utility>

#include "common/error.h"
#include "data/pipeline.h"
#include "train/embedding_assembler.h"
#include "train/metrics.h"
#include "train/prefetcher.h"
#include "train/topk_metrics.h"

#ifdef SHARDREC_HAVE_FAISS
#include <faiss/IVFlib.h>
#include <faiss/Index.h>
#include <faiss/IndexIVF.h>
#include <faiss/index_factory.h>
#endif

namespace shardrec::train {

namespace {

constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

// One candidate of a query's running top-k. Better = higher score, then lower catalogue index.
struct Entry {
  float score;
  int64_t item;
};
inline bool Better(const Entry& a, const Entry& b) { return a.score != b.score ? a.score > b.score : a.item < b.item; }

// Scans one block of a query's scores (items first_item.. in increasing order) into its top-k,
// kept as a heap whose front is the worst kept entry. A block's item comes after every kept one,
// so a score equal to the worst kept score never enters a full heap (the lower index wins ties).
// -inf (excluded) and NaN scores never enter.
void ScanBlock(const float* scores, int64_t n, int64_t first_item, int64_t k, std::vector<Entry>* heap) {
  auto worse_first = [](const Entry& a, const Entry& b) { return Better(a, b); };  // heap front = worst
  const size_t full = static_cast<size_t>(k);
  float threshold = heap->size() < full ? kMinusInf : heap->front().score;
  for (int64_t j = 0; j < n; ++j) {
    const float v = scores[j];
    // Not full: the threshold is -inf, which keeps out excluded items and NaN. Full: an equal
    // score comes later than the kept one, which wins the tie.
    if (!(v > threshold)) continue;
    if (heap->size() < full) {
      heap->push_back({v, first_item + j});
      std::push_heap(heap->begin(), heap->end(), worse_first);
    } else {
      std::pop_heap(heap->begin(), heap->end(), worse_first);
      heap->back() = {v, first_item + j};
      std::push_heap(heap->begin(), heap->end(), worse_first);
    }
    if (heap->size() == full) threshold = heap->front().score;
  }
}

// Multi-interest users score an item by their best interest.
torch::Tensor BlockScores(const torch::Tensor& users, const torch::Tensor& items_block) {
  if (users.dim() == 2) return users.matmul(items_block.t());
  const int64_t q = users.size(0), interests = users.size(1);
  return users.reshape({q * interests, users.size(2)}).matmul(items_block.t()).view({q, interests, -1}).amax(1);
}

}  // namespace

torch::Tensor CatalogEmbeddings(models::MatchModel& model, const data::FeatureSchema& schema, const ItemCatalog& catalog,
                                ps::PsClient* ps, int64_t batch_size) {
  torch::NoGradGuard no_grad;
  CatalogInput input(schema, catalog);
  const int64_t n = catalog.size();
  std::vector<int64_t> items;
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < n; start += batch_size) {
    const int64_t m = std::min(batch_size, n - start);
    items.resize(m);
    std::iota(items.begin(), items.end(), start);
    input.Prepare(items.data(), m, /*batch=*/nullptr, ps, /*read_only=*/true);
    parts.push_back(model.ItemEmbedding(input.Assemble({}, /*requires_grad=*/false)).contiguous());
  }
  if (parts.empty()) return torch::zeros({0, 0});
  return parts.size() == 1 ? parts[0] : torch::cat(parts, 0);
}

TopK ExactTopK(const torch::Tensor& items, const torch::Tensor& users, int64_t k, const Exclusions* exclusions,
               int64_t query_batch, int64_t item_block) {
  torch::NoGradGuard no_grad;
  const int64_t q = users.size(0), n = items.size(0);
  TopK out{torch::full({q, k}, -1, torch::kInt64), torch::full({q, k}, kMinusInf)};
  const bool exclude = exclusions && exclusions->offsets;
  auto out_items = out.items.accessor<int64_t, 2>();
  auto out_scores = out.scores.accessor<float, 2>();
  std::vector<std::vector<Entry>> heaps;
  const int64_t tile = std::min<int64_t>(query_batch, 512);
  for (int64_t q0 = 0; q0 < q; q0 += tile) {
    const int64_t qb = std::min(tile, q - q0);
    heaps.assign(qb, {});
    for (auto& h : heaps) h.reserve(k);
    torch::Tensor u = users.narrow(0, q0, qb).contiguous();
    for (int64_t n0 = 0; n0 < n; n0 += item_block) {
      const int64_t nb = std::min(item_block, n - n0);
      torch::Tensor s = BlockScores(u, items.narrow(0, n0, nb)).contiguous();
      float* sp = s.data_ptr<float>();
      if (exclude) {
        for (int64_t r = 0; r < qb; ++r) {
          for (int64_t e = exclusions->offsets[q0 + r]; e < exclusions->offsets[q0 + r + 1]; ++e) {
            const int64_t item = exclusions->items[e];
            if (item >= n0 && item < n0 + nb) sp[r * nb + (item - n0)] = kMinusInf;
          }
        }
      }
      // One pass over the scores, queries in parallel: most scores fail the threshold test.
      at::parallel_for(0, qb, 1, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) ScanBlock(sp + r * nb, nb, n0, k, &heaps[r]);
      });
    }
    for (int64_t r = 0; r < qb; ++r) {
      std::vector<Entry>& h = heaps[r];
      std::sort(h.begin(), h.end(), Better);
      for (size_t j = 0; j < h.size(); ++j) {
        out_items[q0 + r][j] = h[j].item;
        out_scores[q0 + r][j] = h[j].score;
      }
    }
  }
  return out;
}

bool FaissAvailable() {
#ifdef SHARDREC_HAVE_FAISS
  return true;
#else
  return false;
#endif
}

TopK FaissTopK(const torch::Tensor& items, const torch::Tensor& users, int64_t k, const Exclusions* exclusions,
               const std::string& index_description, int nprobe, int64_t query_batch, std::pair<double, double>* seconds) {
#ifndef SHARDREC_HAVE_FAISS
  (void)items, (void)users, (void)k, (void)exclusions, (void)index_description, (void)nprobe, (void)query_batch, (void)seconds;
  throw UserError(
      "matching.retrieval.backend FAISS: this build has no faiss (install libfaiss-dev, scripts/install-deps.sh, and "
      "rebuild), or use backend EXACT");
#else
  torch::NoGradGuard no_grad;
  const auto start = std::chrono::steady_clock::now();
  const int64_t q = users.size(0), n = items.size(0), d = items.size(1);
  const int64_t interests = users.dim() == 3 ? users.size(1) : 1;
  torch::Tensor base = items.contiguous();
  std::unique_ptr<faiss::Index> index;
  try {
    index.reset(faiss::index_factory(static_cast<int>(d), index_description.c_str(), faiss::METRIC_INNER_PRODUCT));
  } catch (const std::exception& e) {
    throw ConfigError("field matching.retrieval.faiss_index: faiss cannot build \"" + index_description + "\": " + e.what());
  }
  if (!index->is_trained) index->train(n, base.data_ptr<float>());
  index->add(n, base.data_ptr<float>());
  if (faiss::IndexIVF* ivf = faiss::ivflib::try_extract_index_ivf(index.get())) ivf->nprobe = nprobe;
  const auto built = std::chrono::steady_clock::now();

  const bool exclude = exclusions && exclusions->offsets;
  int64_t most_excluded = 0;
  if (exclude)
    for (int64_t r = 0; r < q; ++r) most_excluded = std::max(most_excluded, exclusions->offsets[r + 1] - exclusions->offsets[r]);
  // Excluded items may take places in a list: ask for that many more.
  const int64_t kk = std::min(n, k + most_excluded);
  TopK out{torch::full({q, k}, -1, torch::kInt64), torch::full({q, k}, kMinusInf)};
  auto out_items = out.items.accessor<int64_t, 2>();
  auto out_scores = out.scores.accessor<float, 2>();
  std::vector<float> distances;
  std::vector<faiss::Index::idx_t> labels;
  std::vector<std::pair<float, int64_t>> merged;
  for (int64_t q0 = 0; q0 < q; q0 += query_batch) {
    const int64_t qb = std::min(query_batch, q - q0);
    torch::Tensor u = users.narrow(0, q0, qb).reshape({qb * interests, d}).contiguous();
    distances.resize(qb * interests * kk);
    labels.resize(qb * interests * kk);
    index->search(qb * interests, u.data_ptr<float>(), kk, distances.data(), labels.data());
    for (int64_t r = 0; r < qb; ++r) {
      merged.clear();
      for (int64_t j = 0; j < interests * kk; ++j) {
        const faiss::Index::idx_t item = labels[r * interests * kk + j];
        if (item < 0) continue;
        merged.emplace_back(distances[r * interests * kk + j], item);
      }
      if (exclude) {
        const int64_t* ex = exclusions->items + exclusions->offsets[q0 + r];
        const int64_t* ex_end = exclusions->items + exclusions->offsets[q0 + r + 1];
        merged.erase(std::remove_if(merged.begin(), merged.end(),
                                    [&](const auto& m) { return std::find(ex, ex_end, m.second) != ex_end; }),
                     merged.end());
      }
      // Best score first, ties by lower index; an item found by several interests keeps its best.
      std::sort(merged.begin(), merged.end(), [](const auto& a, const auto& b) { return Better({a.first, a.second}, {b.first, b.second}); });
      int64_t taken = 0;
      for (size_t j = 0; j < merged.size() && taken < k; ++j) {
        bool seen = false;  // one interest lists an item once
        for (int64_t t = 0; interests > 1 && t < taken && !seen; ++t) seen = out_items[q0 + r][t] == merged[j].second;
        if (seen) continue;
        out_items[q0 + r][taken] = merged[j].second;
        out_scores[q0 + r][taken] = merged[j].first;
        ++taken;
      }
    }
  }
  if (seconds) {
    const auto now = std::chrono::steady_clock::now();
    *seconds = {std::chrono::duration<double>(built - start).count(), std::chrono::duration<double>(now - built).count()};
  }
  return out;
#endif
}

QuerySet ReadQueries(models::MatchModel& model, const data::FeatureSchema& schema, const DataPart& part, ps::PsClient* ps,
                     const ItemCatalog& catalog, const QueryOptions& o) {
  torch::NoGradGuard no_grad;
  data::PipelineOptions opts = part.options;
  opts.batch_size = o.batch_size;
  opts.shuffle_buffer = 0;  // file order: "last" means the last row of the user
  data::BatchPipeline pipeline(schema, part.files, opts);
  Prefetcher prefetch(schema, &pipeline, ps, o.prefetch_depth, /*read_only=*/true);

  QuerySet qs;
  qs.tasks = model.num_tasks();
  qs.num_labels = static_cast<int>(schema.label_columns.size());
  const data::FeatureSpec& key = schema.features[catalog.key_feature()];
  const data::FeatureSpec* user = o.user_feature >= 0 ? &schema.features[o.user_feature] : nullptr;
  const data::FeatureSpec* history = o.history_feature >= 0 ? &schema.features[o.history_feature] : nullptr;

  // Every positive row with a catalogued item is a candidate query, in file order.
  std::vector<torch::Tensor> chunks;
  std::vector<int64_t> row_target, row_user, row_excluded, row_excluded_offsets = {0};
  std::vector<int64_t> picked;
  while (auto pb = prefetch.Next()) {
    {
      AssembledBatch a = Assemble(schema, *pb, /*requires_grad=*/false);
      const data::Batch& b = pb->batch;
      torch::Tensor users = model.UserEmbedding(a.input);
      torch::Tensor items = model.ItemEmbedding(a.input);
      torch::Tensor outputs = model.Score(users, items.unsqueeze(1)).squeeze(1);
      if (qs.tasks > 1) outputs = torch::cat({outputs.unsqueeze(1), model.AuxiliaryOutputs(users, items)}, 1);
      torch::Tensor pred = model.Predict(outputs).reshape({b.rows, qs.tasks}).contiguous();
      qs.predictions.insert(qs.predictions.end(), pred.data_ptr<float>(), pred.data_ptr<float>() + pred.numel());
      qs.labels.insert(qs.labels.end(), b.labels.begin(), b.labels.begin() + b.rows * b.num_labels);
      qs.rows += b.rows;

      picked.clear();
      const data::SparseColumn& keys = b.sparse[key.sparse_index];
      for (int64_t r = 0; r < b.rows; ++r) {
        if (!(b.labels[r * b.num_labels] > 0.5f) || keys.offsets[r + 1] == keys.offsets[r]) continue;
        const int64_t target = catalog.Find(keys.ids[keys.offsets[r]]);
        if (target < 0) continue;
        picked.push_back(r);
        row_target.push_back(target);
        int64_t uid = 0;
        if (user) {
          const data::SparseColumn& c = b.sparse[user->sparse_index];
          uid = c.offsets[r + 1] > c.offsets[r] ? c.ids[c.offsets[r]] : 0;
        }
        row_user.push_back(uid);
        if (history) {
          const data::SparseColumn& c = b.sparse[history->sparse_index];
          for (int32_t j = c.offsets[r]; j < c.offsets[r + 1]; ++j) {
            const int64_t item = catalog.Find(c.ids[j]);
            if (item >= 0 && item != target) row_excluded.push_back(item);
          }
          row_excluded_offsets.push_back(static_cast<int64_t>(row_excluded.size()));
        }
      }
      if (!picked.empty())
        chunks.push_back(users.index_select(0, torch::tensor(picked, torch::kInt64)).contiguous());
    }
    prefetch.Recycle(std::move(pb));
  }

  // The query rows: all of them, or each user's last; the first max_queries of those.
  std::vector<int64_t> rows;
  if (o.last_positive_per_user) {
    std::unordered_map<int64_t, int64_t> last;
    for (size_t g = 0; g < row_user.size(); ++g) last[row_user[g]] = static_cast<int64_t>(g);
    for (const auto& [u, g] : last) rows.push_back(g);
    std::sort(rows.begin(), rows.end());
  } else {
    rows.resize(row_target.size());
    std::iota(rows.begin(), rows.end(), 0);
  }
  if (o.max_queries > 0 && static_cast<int64_t>(rows.size()) > o.max_queries) rows.resize(o.max_queries);

  qs.target_offsets = {0};
  if (history) qs.excluded_offsets = {0};
  for (int64_t g : rows) {
    qs.targets.push_back(row_target[g]);
    qs.target_offsets.push_back(static_cast<int64_t>(qs.targets.size()));
    if (history) {
      qs.excluded.insert(qs.excluded.end(), row_excluded.begin() + row_excluded_offsets[g],
                         row_excluded.begin() + row_excluded_offsets[g + 1]);
      qs.excluded_offsets.push_back(static_cast<int64_t>(qs.excluded.size()));
    }
  }
  if (chunks.empty()) {
    qs.users = torch::zeros({0, 1});
  } else {
    torch::Tensor all = chunks.size() == 1 ? chunks[0] : torch::cat(chunks, 0);
    qs.users = all.index_select(0, torch::tensor(rows, torch::kInt64)).contiguous();
  }
  return qs;
}

std::map<std::string, double> EvaluateRetrieval(models::MatchModel& model, const data::FeatureSchema& schema,
                                                const DataPart& part, ps::PsClient* ps, const ItemCatalog& catalog,
                                                const RetrievalOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  model.eval();
  torch::Tensor items = CatalogEmbeddings(model, schema, catalog, ps, o.item_batch);
  QuerySet queries = ReadQueries(model, schema, part, ps, catalog, o.queries);
  model.train();

  TopKMetrics metrics(o.top_k);
  const int64_t k = std::min<int64_t>(metrics.max_k(), catalog.size());
  std::map<std::string, double> m;
  if (queries.size() > 0 && k > 0) {
    const Exclusions ex = queries.exclusions();
    TopK top = o.faiss ? FaissTopK(items, queries.users, k, &ex, o.faiss_index, o.faiss_nprobe, o.query_batch)
                       : ExactTopK(items, queries.users, k, &ex, o.query_batch);
    torch::Tensor ranked = top.items.contiguous();
    const int64_t* rp = ranked.data_ptr<int64_t>();
    for (int64_t qi = 0; qi < queries.size(); ++qi) {
      const int64_t t0 = queries.target_offsets[qi], t1 = queries.target_offsets[qi + 1];
      metrics.Add(rp + qi * k, k, queries.targets.data() + t0, t1 - t0);
    }
  }
  m = metrics.Result();
  m["items"] = static_cast<double>(catalog.size());

  const int64_t rows = queries.rows;
  if (rows > 0) {
    std::vector<float> pred(rows), label(rows);
    for (int t = 0; t < queries.tasks; ++t) {
      for (int64_t r = 0; r < rows; ++r) {
        pred[r] = queries.predictions[r * queries.tasks + t];
        label[r] = queries.labels[r * queries.num_labels + t];
      }
      const std::string suffix = t == 0 ? "" : "_" + schema.label_columns[t];
      if (model.task_kind(t) == models::TaskKind::kRegression) {
        m["mse" + suffix] = MeanSquaredError(pred.data(), label.data(), rows);
      } else {
        m["auc" + suffix] = Auc(pred.data(), label.data(), rows);
      }
    }
  }
  m["retrieval_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return m;
}

}  // namespace shardrec::train

#include "train/item_catalog.h"

#include <cstring>
#include <string>

#include "common/error.h"
#include "data/pipeline.h"

namespace shardrec::train {

using data::FeatureKind;

ItemCatalog::ItemCatalog(const data::FeatureSchema& schema, std::vector<int> item_features, int key_feature)
    : schema_(schema), item_features_(std::move(item_features)), key_(key_feature) {
  if (key_ < 0 || schema_.features[key_].kind != FeatureKind::kSparse)
    throw ConfigError("field matching.item_feature: the item key must be a sparse feature (one id per row)");
  sparse_.resize(item_features_.size());
  dense_.resize(item_features_.size());
  for (size_t k = 0; k < item_features_.size(); ++k) {
    const data::FeatureSpec& f = schema_.features[item_features_[k]];
    if (f.kind == FeatureKind::kSequence && f.pooling == data::Pooling::kConcat) {
      throw ConfigError("item feature \"" + f.name +
                        "\" is a concat-pooled sequence; catalogue items take sparse, dense and mean/sum-pooled features");
    }
    sparse_[k].offsets.assign(1, 0);
  }
}

int64_t ItemCatalog::Find(int64_t id) const {
  auto it = index_.find(id);
  return it == index_.end() ? -1 : it->second;
}

const int64_t* ItemCatalog::feature_ids(size_t k, int64_t item, int64_t* n) const {
  const data::SparseColumn& c = sparse_[k];
  *n = c.offsets[item + 1] - c.offsets[item];
  return c.ids.data() + c.offsets[item];
}

void ItemCatalog::AddBatch(const data::Batch& batch, bool count_positives) {
  const data::SparseColumn& keys = batch.sparse[schema_.features[key_].sparse_index];
  for (int64_t r = 0; r < batch.rows; ++r) {
    if (keys.offsets[r + 1] == keys.offsets[r]) continue;  // no item on this row
    const int64_t id = keys.ids[keys.offsets[r]];
    auto [it, inserted] = index_.emplace(id, size());
    if (inserted) {
      ids_.push_back(id);
      counts_.push_back(0);
      for (size_t k = 0; k < item_features_.size(); ++k) {
        const data::FeatureSpec& f = schema_.features[item_features_[k]];
        if (f.kind == FeatureKind::kDense) {
          dense_[k].push_back(batch.dense[r * batch.num_dense + f.dense_index]);
          continue;
        }
        const data::SparseColumn& col = batch.sparse[f.sparse_index];
        data::SparseColumn& out = sparse_[k];
        out.ids.insert(out.ids.end(), col.ids.begin() + col.offsets[r], col.ids.begin() + col.offsets[r + 1]);
        out.offsets.push_back(static_cast<int32_t>(out.ids.size()));
      }
    }
    if (count_positives && batch.labels[r * batch.num_labels] > 0.5f) {
      ++counts_[it->second];
      ++total_count_;
    }
  }
}

void ItemCatalog::AddParts(const DataSources& sources, int reader_threads) {
  const DataPart* parts[] = {&sources.train, &sources.validation, &sources.test};
  for (const DataPart* part : parts) {
    if (!part->present()) continue;
    data::PipelineOptions o = part->options;
    o.batch_size = 8192;
    o.shuffle_buffer = 0;
    o.threads = std::max(1, reader_threads);
    data::BatchPipeline pipeline(schema_, part->files, o);
    data::Batch batch;
    while (pipeline.Next(&batch)) AddBatch(batch, part == &sources.train);
  }
}

// ---------------------------------------------------------------------------------------------

CatalogInput::CatalogInput(const data::FeatureSchema& schema, const ItemCatalog& catalog)
    : schema_(schema), catalog_(catalog), tables_(schema.tables.size()), features_(catalog.item_features().size()),
      leaves_(schema.tables.size()) {
  for (int f : catalog_.item_features())
    if (schema_.features[f].kind != FeatureKind::kDense) tables_[schema_.features[f].table].used = true;
}

void CatalogInput::Prepare(const int64_t* items, int64_t n, const PreparedBatch* batch, ps::PsClient* ps, bool read_only) {
  rows_ = n;
  items_.assign(items, items + n);
  for (size_t t = 0; t < tables_.size(); ++t) {
    Table& table = tables_[t];
    table.ids.clear();
    if (!table.used) continue;
    table.index.Reset(static_cast<size_t>(n) * 2);
    table.batch_rows = batch ? static_cast<int64_t>(batch->tables[t].ids.size()) + 1 : 0;
  }
  constexpr int64_t kPad = -1;  // replaced by our padding row once the table's size is known
  const std::vector<int>& item_features = catalog_.item_features();
  for (size_t k = 0; k < item_features.size(); ++k) {
    const data::FeatureSpec& f = schema_.features[item_features[k]];
    if (f.kind == FeatureKind::kDense) continue;
    Table& table = tables_[f.table];
    const IdIndex* batch_index = batch ? &batch->tables[f.table].index : nullptr;
    auto position = [&](int64_t id) -> int64_t {
      if (batch_index) {
        const int32_t p = batch_index->Find(id);
        if (p >= 0) return p;
      }
      bool inserted;
      const int32_t p = table.index.Insert(id, &inserted);
      if (inserted) table.ids.push_back(id);
      return table.batch_rows + p;
    };
    Feature& fi = features_[k];
    fi.positions.clear();
    fi.offsets.resize(n);
    fi.lengths.resize(n);
    for (int64_t i = 0; i < n; ++i) {
      int64_t count = 0;
      const int64_t* ids = items[i] >= 0 ? catalog_.feature_ids(k, items[i], &count) : nullptr;
      fi.offsets[i] = static_cast<int64_t>(fi.positions.size());
      if (f.kind == FeatureKind::kSparse) {
        fi.positions.push_back(count > 0 ? position(ids[0]) : kPad);
        fi.lengths[i] = 1;
      } else {
        for (int64_t j = 0; j < count; ++j) fi.positions.push_back(position(ids[j]));
        fi.lengths[i] = count;
      }
    }
  }
  for (size_t k = 0; k < item_features.size(); ++k) {
    const data::FeatureSpec& f = schema_.features[item_features[k]];
    if (f.kind == FeatureKind::kDense) continue;
    const Table& table = tables_[f.table];
    const int64_t pad = table.batch_rows + static_cast<int64_t>(table.ids.size());
    for (int64_t& p : features_[k].positions)
      if (p == kPad) p = pad;
  }
  for (size_t t = 0; t < tables_.size(); ++t) {
    Table& table = tables_[t];
    if (!table.used) continue;
    const int64_t dim = schema_.tables[t].dim, m = static_cast<int64_t>(table.ids.size());
    table.rows.resize((m + 1) * dim);
    std::memset(table.rows.data() + m * dim, 0, sizeof(float) * dim);
    if (m > 0) ps->Pull(static_cast<int>(t), table.ids.data(), m, table.rows.data(), read_only);
  }
}

models::ModelInput CatalogInput::Assemble(const std::vector<torch::Tensor>& batch_rows, bool requires_grad) {
  const int64_t n = rows_;
  models::ModelInput in;
  in.schema = &schema_;
  in.dense = torch::zeros({n, static_cast<int64_t>(schema_.num_dense)});
  in.features.resize(schema_.features.size());

  std::vector<torch::Tensor> combined(tables_.size());
  for (size_t t = 0; t < tables_.size(); ++t) {
    Table& table = tables_[t];
    leaves_[t] = torch::Tensor();
    if (!table.used) continue;
    const int64_t dim = schema_.tables[t].dim, m = static_cast<int64_t>(table.ids.size());
    leaves_[t] = torch::from_blob(table.rows.data(), {m + 1, dim}, torch::kFloat32);
    if (requires_grad) leaves_[t].requires_grad_(true);
    if (table.batch_rows > 0) {
      TORCH_CHECK(t < batch_rows.size() && batch_rows[t].defined() && batch_rows[t].size(0) == table.batch_rows,
                  "CatalogInput::Assemble: the batch's rows of table ", t, " are not the prepared batch's");
      combined[t] = torch::cat({batch_rows[t], leaves_[t]}, 0);
    } else {
      combined[t] = leaves_[t];
    }
  }

  const std::vector<int>& item_features = catalog_.item_features();
  for (size_t k = 0; k < item_features.size(); ++k) {
    const data::FeatureSpec& f = schema_.features[item_features[k]];
    if (f.kind == FeatureKind::kDense) {
      float* out = in.dense.data_ptr<float>();
      for (int64_t i = 0; i < n; ++i)
        if (items_[i] >= 0) out[i * schema_.num_dense + f.dense_index] = catalog_.dense_value(k, items_[i]);
      continue;
    }
    Feature& fi = features_[k];
    models::FeatureInput& input = in.features[item_features[k]];
    torch::Tensor positions =
        torch::from_blob(fi.positions.data(), {static_cast<int64_t>(fi.positions.size())}, torch::kInt64);
    if (f.kind == FeatureKind::kSparse) {
      input.emb = combined[f.table].index_select(0, positions);
    } else {
      torch::Tensor offsets = torch::from_blob(fi.offsets.data(), {n}, torch::kInt64);
      input.emb = std::get<0>(
          torch::embedding_bag(combined[f.table], positions, offsets, false, f.pooling == data::Pooling::kMean ? 1 : 0));
      input.lengths = torch::from_blob(fi.lengths.data(), {n}, torch::kInt64);
    }
  }
  return in;
}

}  // namespace shardrec::train

#include "data/batch_builder.h"

namespace shardrec::data {

void PrepareBatch(const FeatureSchema& schema, Batch* batch) {
  batch->num_labels = static_cast<int>(schema.label_columns.size());
  batch->num_dense = schema.num_dense;
  batch->sparse.resize(static_cast<size_t>(schema.num_sparse));
  batch->Clear();
}

void AppendRows(const Batch& src, int64_t begin, int64_t end, Batch* dst) {
  if (end <= begin) return;
  const size_t nl = static_cast<size_t>(src.num_labels);
  const size_t nd = static_cast<size_t>(src.num_dense);
  dst->labels.insert(dst->labels.end(), src.labels.begin() + begin * nl, src.labels.begin() + end * nl);
  dst->dense.insert(dst->dense.end(), src.dense.begin() + begin * nd, src.dense.begin() + end * nd);
  if (!src.groups.empty()) dst->groups.insert(dst->groups.end(), src.groups.begin() + begin, src.groups.begin() + end);
  for (size_t c = 0; c < src.sparse.size(); ++c) {
    const SparseColumn& s = src.sparse[c];
    SparseColumn& d = dst->sparse[c];
    const int32_t first = s.offsets[begin];
    const int32_t shift = static_cast<int32_t>(d.ids.size()) - first;
    d.ids.insert(d.ids.end(), s.ids.begin() + first, s.ids.begin() + s.offsets[end]);
    for (int64_t r = begin + 1; r <= end; ++r) d.offsets.push_back(s.offsets[r] + shift);
  }
  dst->rows += end - begin;
}

}  // namespace shardrec::data

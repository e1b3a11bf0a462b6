#include "data/shuffle_buffer.h"

#include <algorithm>

namespace shardrec::data {

ShuffleBuffer::ShuffleBuffer(const FeatureSchema& schema, int64_t capacity, uint64_t seed)
    : capacity_(std::max<int64_t>(capacity, 1)),
      rng_(seed),
      num_labels_(schema.label_columns.size()),
      num_dense_(static_cast<size_t>(std::max(schema.num_dense, 0))),
      has_groups_(!schema.group_column.empty()) {
  std::vector<int> kind(static_cast<size_t>(schema.num_sparse), 1);  // 1 = sequence unless shown single
  for (const FeatureSpec& f : schema.features) {
    if (f.kind == FeatureKind::kSparse && f.sparse_index >= 0 && f.sparse_index < schema.num_sparse) {
      kind[static_cast<size_t>(f.sparse_index)] = 0;
    }
  }
  for (int c = 0; c < schema.num_sparse; ++c) (kind[static_cast<size_t>(c)] ? sequence_columns_ : single_columns_).push_back(c);
  // Slot storage grows with the rows actually held (a buffer larger than the data costs nothing).
}

void ShuffleBuffer::Add(const Batch& src, int64_t row, Batch* out) {
  if (size_ < capacity_) {
    Store(size_++, src, row);
    return;
  }
  const int64_t slot = static_cast<int64_t>(rng_.Below(static_cast<uint64_t>(capacity_)));
  Emit(slot, out);
  Store(slot, src, row);
}

void ShuffleBuffer::PopRandom(Batch* out) {
  const int64_t slot = static_cast<int64_t>(rng_.Below(static_cast<uint64_t>(size_)));
  Emit(slot, out);
  --size_;
  if (slot != size_) MoveSlot(size_, slot);
}

void ShuffleBuffer::Store(int64_t slot, const Batch& src, int64_t row) {
  const size_t s = static_cast<size_t>(slot), r = static_cast<size_t>(row);
  if (s * num_labels_ >= labels_.size() && num_labels_) labels_.resize((s + 1) * num_labels_);
  if (s * num_dense_ >= dense_.size() && num_dense_) dense_.resize((s + 1) * num_dense_);
  std::copy_n(src.labels.begin() + static_cast<std::ptrdiff_t>(r * num_labels_), num_labels_,
              labels_.begin() + static_cast<std::ptrdiff_t>(s * num_labels_));
  std::copy_n(src.dense.begin() + static_cast<std::ptrdiff_t>(r * num_dense_), num_dense_,
              dense_.begin() + static_cast<std::ptrdiff_t>(s * num_dense_));
  if (has_groups_) {
    if (s >= groups_.size()) groups_.resize(s + 1);
    groups_[s] = src.groups[r];
  }
  const size_t ns = single_columns_.size();
  if (ns) {
    if (s * ns >= single_ids_.size()) single_ids_.resize((s + 1) * ns);
    for (size_t k = 0; k < ns; ++k) {
      const SparseColumn& c = src.sparse[static_cast<size_t>(single_columns_[k])];
      single_ids_[s * ns + k] = c.ids[static_cast<size_t>(c.offsets[r])];
    }
  }
  const size_t nq = sequence_columns_.size();
  if (nq) {
    if (s >= sequence_ids_.size()) {
      sequence_ids_.resize(s + 1);
      sequence_lengths_.resize((s + 1) * nq);
    }
    std::vector<int64_t>& ids = sequence_ids_[s];
    ids.clear();
    for (size_t k = 0; k < nq; ++k) {
      const SparseColumn& c = src.sparse[static_cast<size_t>(sequence_columns_[k])];
      const int32_t b = c.offsets[r], e = c.offsets[r + 1];
      ids.insert(ids.end(), c.ids.begin() + b, c.ids.begin() + e);
      sequence_lengths_[s * nq + k] = e - b;
    }
  }
}

void ShuffleBuffer::Emit(int64_t slot, Batch* out) const {
  const size_t s = static_cast<size_t>(slot);
  out->labels.insert(out->labels.end(), labels_.begin() + static_cast<std::ptrdiff_t>(s * num_labels_),
                     labels_.begin() + static_cast<std::ptrdiff_t>((s + 1) * num_labels_));
  out->dense.insert(out->dense.end(), dense_.begin() + static_cast<std::ptrdiff_t>(s * num_dense_),
                    dense_.begin() + static_cast<std::ptrdiff_t>((s + 1) * num_dense_));
  if (has_groups_) out->groups.push_back(groups_[s]);
  const size_t ns = single_columns_.size();
  for (size_t k = 0; k < ns; ++k) {
    SparseColumn& c = out->sparse[static_cast<size_t>(single_columns_[k])];
    c.ids.push_back(single_ids_[s * ns + k]);
    c.offsets.push_back(static_cast<int32_t>(c.ids.size()));
  }
  const size_t nq = sequence_columns_.size();
  if (nq) {
    const std::vector<int64_t>& ids = sequence_ids_[s];
    size_t pos = 0;
    for (size_t k = 0; k < nq; ++k) {
      SparseColumn& c = out->sparse[static_cast<size_t>(sequence_columns_[k])];
      const size_t len = static_cast<size_t>(sequence_lengths_[s * nq + k]);
      c.ids.insert(c.ids.end(), ids.begin() + static_cast<std::ptrdiff_t>(pos), ids.begin() + static_cast<std::ptrdiff_t>(pos + len));
      c.offsets.push_back(static_cast<int32_t>(c.ids.size()));
      pos += len;
    }
  }
  ++out->rows;
}

void ShuffleBuffer::MoveSlot(int64_t from, int64_t to) {
  const size_t f = static_cast<size_t>(from), t = static_cast<size_t>(to);
  std::copy_n(labels_.begin() + static_cast<std::ptrdiff_t>(f * num_labels_), num_labels_,
              labels_.begin() + static_cast<std::ptrdiff_t>(t * num_labels_));
  std::copy_n(dense_.begin() + static_cast<std::ptrdiff_t>(f * num_dense_), num_dense_,
              dense_.begin() + static_cast<std::ptrdiff_t>(t * num_dense_));
  if (has_groups_) groups_[t] = groups_[f];
  const size_t ns = single_columns_.size();
  std::copy_n(single_ids_.begin() + static_cast<std::ptrdiff_t>(f * ns), ns, single_ids_.begin() + static_cast<std::ptrdiff_t>(t * ns));
  const size_t nq = sequence_columns_.size();
  if (nq) {
    sequence_ids_[t].swap(sequence_ids_[f]);
    std::copy_n(sequence_lengths_.begin() + static_cast<std::ptrdiff_t>(f * nq), nq,
                sequence_lengths_.begin() + static_cast<std::ptrdiff_t>(t * nq));
  }
}

}  // namespace shardrec::data

#include "train/embedding_assembler.h"

namespace shardrec::train {

AssembledBatch Assemble(const data::FeatureSchema& schema, PreparedBatch& pb, bool requires_grad, torch::Device device) {
  const bool host = device.is_cpu();
  // On the host the tensors are views of the batch's buffers; elsewhere, copies on the device.
  auto View = [&](std::vector<int64_t>& v, at::IntArrayRef shape) {
    torch::Tensor t = torch::from_blob(v.data(), shape, torch::kInt64);
    return host ? t : t.to(device);
  };
  data::Batch& b = pb.batch;
  const int64_t B = b.rows;
  AssembledBatch out;
  out.input.schema = &schema;
  out.input.dense = torch::from_blob(b.dense.data(), {B, static_cast<int64_t>(schema.num_dense)}, torch::kFloat32);
  out.labels = torch::from_blob(b.labels.data(), {B, static_cast<int64_t>(b.num_labels)}, torch::kFloat32);
  if (!host) {
    out.input.dense = out.input.dense.to(device);
    out.labels = out.labels.to(device);
  }

  out.rows.resize(pb.tables.size());
  for (size_t t = 0; t < pb.tables.size(); ++t) {
    const int64_t dim = schema.tables[t].dim;
    const int64_t n = static_cast<int64_t>(pb.tables[t].ids.size()) + 1;
    out.rows[t] = torch::from_blob(pb.tables[t].rows.data(), {n, dim}, torch::kFloat32);
    if (!host) out.rows[t] = out.rows[t].to(device);
    if (requires_grad) out.rows[t].requires_grad_(true);
  }

  out.input.features.resize(schema.features.size());
  for (size_t i = 0; i < schema.features.size(); ++i) {
    const data::FeatureSpec& f = schema.features[i];
    if (f.kind == data::FeatureKind::kDense) continue;
    FeatureIndex& fi = pb.features[f.sparse_index];
    const torch::Tensor& rows = out.rows[f.table];
    const int64_t pad = rows.size(0) - 1;
    models::FeatureInput& in = out.input.features[i];
    if (f.kind == data::FeatureKind::kSparse) {
      in.emb = rows.index_select(0, View(fi.positions, {B}));
    } else if (f.pooling != data::Pooling::kConcat) {
      torch::Tensor positions = View(fi.positions, {static_cast<int64_t>(fi.positions.size())});
      torch::Tensor offsets = View(fi.offsets, {B});
      // mode 0 = sum, 1 = mean; an empty history pools to zeros (the reference divides by n + 1e-16).
      in.emb = std::get<0>(torch::embedding_bag(rows, positions, offsets, false, f.pooling == data::Pooling::kMean ? 1 : 0));
      in.lengths = View(fi.lengths, {B});
    } else {
      const int64_t L = f.max_len;
      torch::Tensor positions = View(fi.positions, {B, L});
      // padding_idx keeps the zero padding row out of the gradient.
      in.emb = torch::embedding(rows, positions, pad);
      in.mask = positions.ne(pad);
      in.lengths = View(fi.lengths, {B});
    }
  }
  return out;
}

}  // namespace shardrec::train

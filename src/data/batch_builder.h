#pragma once
// Helpers that shape and fill Batches without per-row allocation.
#include <cstdint>

#include "data/batch.h"
#include "data/feature_schema.h"

namespace shardrec::data {

// Gives `batch` the schema's shape (label, dense and sparse column counts) and no rows, keeping
// its buffers' capacity.
void PrepareBatch(const FeatureSchema& schema, Batch* batch);

// Appends rows [begin, end) of `src` to `dst` (same shape).
void AppendRows(const Batch& src, int64_t begin, int64_t end, Batch* dst);

}  // namespace shardrec::data

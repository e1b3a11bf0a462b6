#pragma once
// This process's place among a job's data-parallel workers, and the few collectives the trainer
// needs beyond gradient averaging (agreement on the step count, gathering evaluation outputs).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "dist/communicator.h"

namespace shardrec::train {

struct WorkerGroup {
  int rank = 0;
  int size = 1;
  dist::Communicator* comm = nullptr;  // workers only (no PS processes); null when size == 1
  int local_rank = 0;                  // among this machine's workers: picks the GPU

  bool chief() const { return rank == 0; }
  bool distributed() const { return size > 1; }

  // True when every worker passes true. Every collective loop (steps, evaluation batches) asks
  // this before each iteration, so workers whose data shards differ in length by a batch stop
  // together instead of leaving one rank waiting in an allreduce.
  bool All(bool mine) const {
    if (!distributed()) return mine;
    int64_t v = mine ? 1 : 0;
    comm->AllreduceSum(&v, 1);
    return v == size;
  }

  double Sum(double mine) const {
    if (distributed()) comm->AllreduceSum(&mine, 1);
    return mine;
  }

  void Barrier() const {
    if (distributed()) comm->Barrier();
  }

  // Every worker's `v` concatenated in rank order, on every worker.
  template <typename T>
  void AllgatherVector(std::vector<T>* v) const {
    static_assert(std::is_trivially_copyable_v<T>);
    if (!distributed()) return;
    int64_t n = static_cast<int64_t>(v->size());
    std::vector<int64_t> counts(static_cast<size_t>(size));
    comm->AllgatherBytes(&n, sizeof(n), counts.data());
    const int64_t most = *std::max_element(counts.begin(), counts.end());
    if (most == 0) return;
    v->resize(static_cast<size_t>(most));  // equal-size contributions; the tail is padding
    std::vector<T> all(static_cast<size_t>(most * size));
    comm->AllgatherBytes(v->data(), sizeof(T) * static_cast<size_t>(most), all.data());
    v->clear();
    for (int r = 0; r < size; ++r)
      v->insert(v->end(), all.begin() + r * most, all.begin() + r * most + counts[static_cast<size_t>(r)]);
  }
};

}  // namespace shardrec::train

#pragma once
// How a job's features map to embedding tables. Shared by config validation and schema building
// so that both agree. A feature uses: the table of the feature named by `shared_with`; else the
// table named by `table`; else a table of its own name (declared in `tables` or implied, with
// the `embedding` defaults and the feature's `dim`).
#include <string>

#include "shardrec/config.pb.h"

namespace shardrec::config {

inline int FindFeature(const Job& job, const std::string& name) {
  for (int i = 0; i < job.features_size(); ++i)
    if (job.features(i).name() == name) return i;
  return -1;
}

inline int FindTable(const Job& job, const std::string& name) {
  for (int i = 0; i < job.tables_size(); ++i)
    if (job.tables(i).name() == name) return i;
  return -1;
}

// Name of the table feature `fi` uses, or "" when a shared_with chain is broken or cyclic.
inline std::string TableNameOf(const Job& job, int fi) {
  for (int hops = 0; fi >= 0 && hops <= job.features_size(); ++hops) {
    const Feature& f = job.features(fi);
    if (f.has_shared_with()) {
      fi = FindFeature(job, f.shared_with());
      continue;
    }
    return f.has_table() ? f.table() : f.name();
  }
  return "";
}

// Embedding dimension of table `name` (declared, or implied by the feature of that name).
inline int TableDim(const Job& job, const std::string& name) {
  int t = FindTable(job, name);
  if (t >= 0 && job.tables(t).has_dim()) return job.tables(t).dim();
  if (t < 0) {
    int owner = FindFeature(job, name);
    if (owner >= 0 && job.features(owner).has_dim()) return job.features(owner).dim();
  }
  return job.embedding().dim();
}

inline bool IsPooledOrSparse(const Feature& f) {
  return f.type() == Feature::SPARSE || (f.type() == Feature::SEQUENCE && f.pooling() != Feature::CONCAT);
}

}  // namespace shardrec::config

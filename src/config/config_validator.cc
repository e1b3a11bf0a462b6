#include "config/config_validator.h"

#include <set>

#include "config/job_resolution.h"

namespace shardrec::config {

namespace pb = google::protobuf;

namespace {

// Builds FieldPaths by field name: P(job, "trainer", "batch_size"), with indices via At().
class Checker {
 public:
  Checker(const Job& job, const ConfigLocator& loc) : job_(job), loc_(loc) {}

  // Path of field names below `base` (which may be empty = the root).
  FieldPath Path(FieldPath base, const pb::Descriptor* d, std::initializer_list<const char*> names) const {
    for (const char* n : names) {
      const pb::FieldDescriptor* f = d->FindFieldByName(n);
      base.push_back({f, -1});
      d = f->message_type();
    }
    return base;
  }
  FieldPath Root(std::initializer_list<const char*> names) const { return Path({}, Job::descriptor(), names); }
  FieldPath At(FieldPath p, int index) const {
    p.back().index = index;
    return p;
  }
  [[noreturn]] void Fail(const FieldPath& p, const std::string& what) const { loc_.Fail(job_, p, what); }
  void Require(bool ok, const FieldPath& p, const std::string& what) const {
    if (!ok) Fail(p, what);
  }

 private:
  const Job& job_;
  const ConfigLocator& loc_;
};

void CheckOptimizer(const Checker& c, const FieldPath& p, const RowOptimizer& o) {
  c.Require(o.lr() > 0, c.Path(p, RowOptimizer::descriptor(), {"lr"}), "must be > 0");
  c.Require(o.beta1() >= 0 && o.beta1() < 1, c.Path(p, RowOptimizer::descriptor(), {"beta1"}), "must be in [0, 1)");
  c.Require(o.beta2() >= 0 && o.beta2() < 1, c.Path(p, RowOptimizer::descriptor(), {"beta2"}), "must be in [0, 1)");
  c.Require(!o.has_eps() || o.eps() > 0, c.Path(p, RowOptimizer::descriptor(), {"eps"}), "must be > 0");
  c.Require(o.weight_decay() >= 0, c.Path(p, RowOptimizer::descriptor(), {"weight_decay"}), "must be >= 0");
  c.Require(o.initial_accumulator() >= 0, c.Path(p, RowOptimizer::descriptor(), {"initial_accumulator"}), "must be >= 0");
  c.Require(o.l1() >= 0, c.Path(p, RowOptimizer::descriptor(), {"l1"}), "must be >= 0");
  c.Require(o.l2() >= 0, c.Path(p, RowOptimizer::descriptor(), {"l2"}), "must be >= 0");
  c.Require(o.ftrl_beta() >= 0, c.Path(p, RowOptimizer::descriptor(), {"ftrl_beta"}), "must be >= 0");
  c.Require(o.lr_power() <= 0, c.Path(p, RowOptimizer::descriptor(), {"lr_power"}), "must be <= 0");
}

void CheckInit(const Checker& c, const FieldPath& p, const Initializer& i) {
  c.Require(i.std() >= 0, c.Path(p, Initializer::descriptor(), {"std"}), "must be >= 0");
  c.Require(i.low() <= i.high(), c.Path(p, Initializer::descriptor(), {"high"}), "must be >= low");
}

void CheckData(const Checker& c, const Job& job) {
  c.Require(job.has_data(), c.Root({"data"}), "missing: a job needs data { files { ... } } or data { synthetic { ... } }");
  const Data& d = job.data();
  c.Require(d.source_case() != Data::SOURCE_NOT_SET, c.Root({"data"}), "missing source: set data.files or data.synthetic");
  if (d.has_files()) {
    c.Require(d.files().train_size() > 0, c.Root({"data", "files", "train"}), "missing: at least one training file");
    c.Require(!d.files().has_delimiter() || d.files().delimiter().size() == 1 || d.files().delimiter() == "\\t",
              c.Root({"data", "files", "delimiter"}), "must be a single character");
  } else {
    c.Require(d.synthetic().rows() >= 10, c.Root({"data", "synthetic", "rows"}), "must be >= 10");
    c.Require(d.synthetic().vocab_size() >= 1, c.Root({"data", "synthetic", "vocab_size"}), "must be >= 1");
  }
  c.Require(d.validation_fraction() >= 0 && d.validation_fraction() < 1, c.Root({"data", "validation_fraction"}), "must be in [0, 1)");
  c.Require(d.test_fraction() >= 0 && d.test_fraction() < 1, c.Root({"data", "test_fraction"}), "must be in [0, 1)");
  c.Require(d.validation_fraction() + d.test_fraction() < 1, c.Root({"data", "test_fraction"}),
            "validation_fraction + test_fraction must be < 1 (nothing would be left to train on)");
  c.Require(d.reader_threads() >= 1, c.Root({"data", "reader_threads"}), "must be >= 1");
  c.Require(d.shuffle_buffer() >= 0, c.Root({"data", "shuffle_buffer"}), "must be >= 0");
  c.Require(d.max_bad_lines() >= 0, c.Root({"data", "max_bad_lines"}), "must be >= 0");
  std::set<std::string> seen;
  for (int i = 0; i < d.label_columns_size(); ++i) {
    c.Require(!d.label_columns(i).empty(), c.At(c.Root({"data", "label_columns"}), i), "must not be empty");
    c.Require(seen.insert(d.label_columns(i)).second, c.At(c.Root({"data", "label_columns"}), i), "duplicate label column");
  }
}

void CheckTables(const Checker& c, const Job& job) {
  c.Require(job.embedding().dim() > 0, c.Root({"embedding", "dim"}), "must be > 0");
  CheckInit(c, c.Root({"embedding", "init"}), job.embedding().init());
  CheckOptimizer(c, c.Root({"embedding", "optimizer"}), job.embedding().optimizer());
  std::set<std::string> names;
  for (int i = 0; i < job.tables_size(); ++i) {
    const Table& t = job.tables(i);
    FieldPath p = c.At(c.Root({"tables"}), i);
    c.Require(!t.name().empty(), c.Path(p, Table::descriptor(), {"name"}), "missing: every table needs a name");
    c.Require(names.insert(t.name()).second, c.Path(p, Table::descriptor(), {"name"}), "duplicate table '" + t.name() + "'");
    c.Require(!t.has_dim() || t.dim() > 0, c.Path(p, Table::descriptor(), {"dim"}), "must be > 0");
    if (t.has_init()) CheckInit(c, c.Path(p, Table::descriptor(), {"init"}), t.init());
    if (t.has_optimizer()) CheckOptimizer(c, c.Path(p, Table::descriptor(), {"optimizer"}), t.optimizer());
  }
}

void CheckFeatures(const Checker& c, const Job& job) {
  c.Require(job.features_size() > 0, c.Root({"features"}), "missing: a job needs at least one feature");
  std::set<std::string> names;
  for (int i = 0; i < job.features_size(); ++i) {
    const Feature& f = job.features(i);
    FieldPath p = c.At(c.Root({"features"}), i);
    auto F = [&](const char* n) { return c.Path(p, Feature::descriptor(), {n}); };
    c.Require(!f.name().empty(), F("name"), "missing: every feature needs a name");
    c.Require(names.insert(f.name()).second, F("name"), "duplicate feature '" + f.name() + "'");
    if (f.type() == Feature::DENSE) {
      c.Require(!f.has_table(), F("table"), "a dense feature has no embedding table");
      c.Require(!f.has_shared_with(), F("shared_with"), "a dense feature has no embedding table to share");
      c.Require(!f.has_dim(), F("dim"), "a dense feature is one float; it has no embedding dim");
      if (f.transform() == Feature::MINMAX) {
        c.Require(f.has_min() && f.has_max(), F("transform"), "MINMAX needs min and max");
        c.Require(f.min() < f.max(), F("max"), "must be > min");
      }
      continue;
    }
    c.Require(!(f.has_table() && f.has_shared_with()), F("shared_with"), "set either table or shared_with, not both");
    if (f.has_table()) {
      c.Require(FindTable(job, f.table()) >= 0, F("table"), "names unknown table '" + f.table() + "' (declare it in tables { name: \"" + f.table() + "\" })");
      c.Require(!f.has_dim(), F("dim"), "dim belongs to the table '" + f.table() + "', not to the feature");
    }
    if (f.has_shared_with()) {
      int other = FindFeature(job, f.shared_with());
      c.Require(other >= 0, F("shared_with"), "names unknown feature '" + f.shared_with() + "'");
      c.Require(other != i, F("shared_with"), "a feature cannot share with itself");
      c.Require(job.features(other).type() != Feature::DENSE, F("shared_with"), "'" + f.shared_with() + "' is dense and has no table");
      c.Require(!TableNameOf(job, i).empty(), F("shared_with"), "shared_with chain is cyclic");
      c.Require(!f.has_dim(), F("dim"), "a feature that shares a table takes that table's dim");
    }
    c.Require(!f.has_dim() || f.dim() > 0, F("dim"), "must be > 0");
    if (f.type() == Feature::SEQUENCE) {
      c.Require(f.max_len() > 0, F("max_len"), "must be > 0");
      c.Require(f.separator().size() == 1, F("separator"), "must be a single character");
    } else {
      c.Require(!f.has_pooling(), F("pooling"), "only sequence features are pooled");
      c.Require(!f.has_max_len(), F("max_len"), "only sequence features have a length");
    }
    c.Require(!f.has_transform(), F("transform"), "only dense features are transformed");
  }
}

// Resolves a model part's feature list; reports unknown names and features the part cannot take.
template <typename Accept>
std::vector<int> PartFeatures(const Checker& c, const Job& job, const FieldPath& list_path,
                              const pb::RepeatedPtrField<std::string>& names, Accept accept, const char* what) {
  std::vector<int> out;
  if (names.empty()) {
    for (int i = 0; i < job.features_size(); ++i)
      if (accept(job.features(i))) out.push_back(i);
    c.Require(!out.empty(), list_path, std::string("no feature can go to this part; it takes ") + what);
    return out;
  }
  for (int k = 0; k < names.size(); ++k) {
    int fi = FindFeature(job, names[k]);
    c.Require(fi >= 0, c.At(list_path, k), "names unknown feature '" + names[k] + "'");
    c.Require(accept(job.features(fi)), c.At(list_path, k), "feature '" + names[k] + "' cannot go to this part; it takes " + what);
    out.push_back(fi);
  }
  return out;
}

void CheckMlp(const Checker& c, const FieldPath& p, const Mlp& m) {
  for (int i = 0; i < m.dims_size(); ++i) c.Require(m.dims(i) > 0, c.At(c.Path(p, Mlp::descriptor(), {"dims"}), i), "must be > 0");
  c.Require(m.dropout() >= 0 && m.dropout() < 1, c.Path(p, Mlp::descriptor(), {"dropout"}), "must be in [0, 1)");
  c.Require(m.dropout_rates_size() == 0 || m.dropout_rates_size() == m.dims_size(), c.Path(p, Mlp::descriptor(), {"dropout_rates"}),
            "needs one rate per hidden layer (" + std::to_string(m.dims_size()) + ")");
  for (int i = 0; i < m.dropout_rates_size(); ++i)
    c.Require(m.dropout_rates(i) >= 0 && m.dropout_rates(i) < 1, c.At(c.Path(p, Mlp::descriptor(), {"dropout_rates"}), i), "must be in [0, 1)");
}

void CheckModel(const Checker& c, const Job& job) {
  const Model& m = job.model();
  c.Require(m.kind_case() != Model::KIND_NOT_SET, c.Root({"model"}), "missing: choose one model, e.g. model { deepfm { } }");
  auto flat = [](const Feature& f) { return f.type() == Feature::DENSE || IsPooledOrSparse(f); };
  const char* flat_what = "sparse, dense and mean/sum-pooled sequence features";
  int num_labels = std::max(1, job.data().label_columns_size());
  if (job.data().has_synthetic() && job.data().label_columns_size() == 0 && job.data().synthetic().kind() == Synthetic::MTL) num_labels = 2;
  switch (m.kind_case()) {
    case Model::kWideDeep: {
      FieldPath p = c.Root({"model", "wide_deep"});
      PartFeatures(c, job, c.Path(p, WideDeep::descriptor(), {"wide_features"}), m.wide_deep().wide_features(), flat, flat_what);
      PartFeatures(c, job, c.Path(p, WideDeep::descriptor(), {"deep_features"}), m.wide_deep().deep_features(), flat, flat_what);
      CheckMlp(c, c.Path(p, WideDeep::descriptor(), {"mlp"}), m.wide_deep().mlp());
      break;
    }
    case Model::kDeepfm: {
      FieldPath p = c.Root({"model", "deepfm"});
      FieldPath fm_path = c.Path(p, DeepFM::descriptor(), {"fm_features"});
      auto fm = PartFeatures(c, job, fm_path, m.deepfm().fm_features(),
                             [](const Feature& f) { return IsPooledOrSparse(f); }, "sparse and mean/sum-pooled sequence features");
      int dim0 = TableDim(job, TableNameOf(job, fm[0]));
      for (size_t k = 0; k < fm.size(); ++k) {
        int d = TableDim(job, TableNameOf(job, fm[k]));
        c.Require(d == dim0, m.deepfm().fm_features().empty() ? fm_path : c.At(fm_path, static_cast<int>(k)),
                  "FM features need one embedding dim: '" + job.features(fm[k]).name() + "' has " + std::to_string(d) +
                      ", '" + job.features(fm[0]).name() + "' has " + std::to_string(dim0));
      }
      PartFeatures(c, job, c.Path(p, DeepFM::descriptor(), {"deep_features"}), m.deepfm().deep_features(), flat, flat_what);
      CheckMlp(c, c.Path(p, DeepFM::descriptor(), {"mlp"}), m.deepfm().mlp());
      break;
    }
    default:
      break;
  }
  c.Require(num_labels == 1, c.Root({"data", "label_columns"}), "this model predicts one label; " + std::to_string(num_labels) + " label columns are configured");
}

void CheckTrainer(const Checker& c, const Job& job) {
  const Trainer& t = job.trainer();
  c.Require(t.batch_size() > 0, c.Root({"trainer", "batch_size"}), "must be > 0");
  c.Require(t.eval_batch_size() > 0, c.Root({"trainer", "eval_batch_size"}), "must be > 0");
  c.Require(t.epochs() > 0, c.Root({"trainer", "epochs"}), "must be > 0");
  c.Require(t.optimizer().lr() > 0, c.Root({"trainer", "optimizer", "lr"}), "must be > 0");
  c.Require(t.optimizer().weight_decay() >= 0, c.Root({"trainer", "optimizer", "weight_decay"}), "must be >= 0");
  c.Require(t.optimizer().beta1() >= 0 && t.optimizer().beta1() < 1, c.Root({"trainer", "optimizer", "beta1"}), "must be in [0, 1)");
  c.Require(t.optimizer().beta2() >= 0 && t.optimizer().beta2() < 1, c.Root({"trainer", "optimizer", "beta2"}), "must be in [0, 1)");
  c.Require(t.scheduler().step_size() > 0, c.Root({"trainer", "scheduler", "step_size"}), "must be > 0");
  c.Require(t.scheduler().gamma() > 0, c.Root({"trainer", "scheduler", "gamma"}), "must be > 0");
  c.Require(t.early_stopping_patience() >= 0, c.Root({"trainer", "early_stopping_patience"}), "must be >= 0");
  c.Require(t.num_threads() >= 0, c.Root({"trainer", "num_threads"}), "must be >= 0 (0 = all cores)");
  c.Require(t.max_steps_per_epoch() >= 0, c.Root({"trainer", "max_steps_per_epoch"}), "must be >= 0");
  c.Require(t.log_every() > 0, c.Root({"trainer", "log_every"}), "must be > 0");
  c.Require(t.prefetch_depth() >= 0, c.Root({"trainer", "prefetch_depth"}), "must be >= 0");
}

void CheckDistribution(const Checker& c, const Job& job) {
  c.Require(job.ps().num_shards() >= 1, c.Root({"ps", "num_shards"}), "must be >= 1");
  c.Require(job.ps().max_inflight_pushes() >= 1, c.Root({"ps", "max_inflight_pushes"}), "must be >= 1");
  c.Require(job.ps().cache_bytes() > 0, c.Root({"ps", "cache_bytes"}), "must be > 0");
  c.Require(job.ps().flush_log_bytes() > 0, c.Root({"ps", "flush_log_bytes"}), "must be > 0");
  for (int i = 0; i < job.ps().addresses_size(); ++i) {
    const std::string& a = job.ps().addresses(i);
    const size_t colon = a.rfind(':');
    c.Require(colon != std::string::npos && colon > 0 && colon + 1 < a.size(), c.At(c.Root({"ps", "addresses"}), i),
              "'" + a + "' is not HOST:PORT");
  }
  c.Require(job.ps().rpc_timeout_s() > 0, c.Root({"ps", "rpc_timeout_s"}), "must be > 0");
  c.Require(job.ps().max_attempts() >= 1, c.Root({"ps", "max_attempts"}), "must be >= 1");
  c.Require(job.ps().connect_timeout_s() > 0, c.Root({"ps", "connect_timeout_s"}), "must be > 0");
  c.Require(job.dist().num_workers() == 1, c.Root({"dist", "num_workers"}),
            "multi-worker training is not built yet (distributed-training issue); use 1");
}

}  // namespace

void ValidateJob(const Job& job, const ConfigLocator& locator) {
  Checker c(job, locator);
  CheckData(c, job);
  CheckTables(c, job);
  CheckFeatures(c, job);
  CheckModel(c, job);
  CheckTrainer(c, job);
  CheckDistribution(c, job);
}

}  // namespace shardrec::config

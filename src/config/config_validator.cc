#include "config/config_validator.h"

#include <cmath>
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

// Field-interaction models (AFM, FiBiNET): the sparse / pooled features among `fields` (a part's
// list, resolved) interact pairwise, so they are at least two and share one embedding dim.
void CheckInteractingFields(const Checker& c, const Job& job, const FieldPath& list_path, bool listed,
                            const std::vector<int>& fields, const std::string& model) {
  int first = -1, count = 0;
  for (size_t k = 0; k < fields.size(); ++k) {
    const Feature& f = job.features(fields[k]);
    if (!IsPooledOrSparse(f)) continue;
    ++count;
    if (first < 0) {
      first = fields[k];
      continue;
    }
    const int d0 = TableDim(job, TableNameOf(job, first)), d = TableDim(job, TableNameOf(job, fields[k]));
    c.Require(d == d0, listed ? c.At(list_path, static_cast<int>(k)) : list_path,
              model + " interacting features need one embedding dim: '" + f.name() + "' has " + std::to_string(d) +
                  ", '" + job.features(first).name() + "' has " + std::to_string(d0));
  }
  c.Require(count >= 2, list_path,
            model + " needs at least two sparse or mean/sum-pooled sequence features to interact, got " + std::to_string(count));
}

// Sequence recall models (GRU4Rec, NARM, SASRec, MIND): the history (the only concat sequence
// unless named), the item-id feature (the first sparse feature on the history's table unless
// named) and the user features, resolved as models/sequence_recall_layers.cc does.
struct SequenceRecallFeatures {
  int history = -1, item = -1;
  int history_dim = 0, item_dim = 0;
};

template <typename M>
SequenceRecallFeatures CheckSequenceRecall(const Checker& c, const Job& job, const FieldPath& p, const M& m) {
  const pb::Descriptor* d = M::descriptor();
  auto is_history = [](const Feature& f) { return f.type() == Feature::SEQUENCE && f.pooling() == Feature::CONCAT; };
  SequenceRecallFeatures out;
  const FieldPath hp = c.Path(p, d, {"history_feature"});
  if (m.has_history_feature()) {
    out.history = FindFeature(job, m.history_feature());
    c.Require(out.history >= 0, hp, "names unknown feature '" + m.history_feature() + "'");
    c.Require(is_history(job.features(out.history)), hp,
              "feature '" + m.history_feature() + "' is not a sequence with pooling CONCAT (the history is read item by item)");
  } else {
    for (int i = 0; i < job.features_size(); ++i) {
      if (!is_history(job.features(i))) continue;
      c.Require(out.history < 0, hp, "several sequences with pooling CONCAT ('" + job.features(std::max(out.history, 0)).name() +
                                         "', '" + job.features(i).name() + "'): name the history");
      out.history = i;
    }
    c.Require(out.history >= 0, hp, "missing: no sequence feature with pooling CONCAT to use as the item history");
  }
  const std::string table = TableNameOf(job, out.history);
  const FieldPath ip = c.Path(p, d, {"item_feature"});
  if (m.has_item_feature()) {
    out.item = FindFeature(job, m.item_feature());
    c.Require(out.item >= 0, ip, "names unknown feature '" + m.item_feature() + "'");
    c.Require(job.features(out.item).type() == Feature::SPARSE, ip, "feature '" + m.item_feature() + "' is not sparse (one item id per row)");
  } else {
    for (int i = 0; i < job.features_size() && out.item < 0; ++i)
      if (job.features(i).type() == Feature::SPARSE && TableNameOf(job, i) == table) out.item = i;
    c.Require(out.item >= 0, ip, "missing: no sparse feature uses the history's table '" + table + "'; name the item-id feature");
  }
  out.history_dim = TableDim(job, table);
  out.item_dim = TableDim(job, TableNameOf(job, out.item));
  c.Require(m.temperature() > 0, c.Path(p, d, {"temperature"}), "must be > 0");
  return out;
}

// Behaviour-sequence models (DIN, BST): history_features (concat sequences) paired in order with
// target_features (sparse, same embedding dim), the other features and the top MLP, checked as
// models/sequence_layers.cc resolves them. Returns the histories' feature indices.
template <typename M>
std::vector<int> CheckBehaviourPairs(const Checker& c, const Job& job, const FieldPath& p, const M& m, bool same_length) {
  auto P = [&](const char* n) { return c.Path(p, M::descriptor(), {n}); };
  const int k = m.history_features_size();
  c.Require(k > 0, P("history_features"), "missing: name the behaviour histories (sequence features with pooling CONCAT)");
  c.Require(m.target_features_size() == k, P("target_features"),
            "needs one target per history feature (" + std::to_string(k) + "), got " + std::to_string(m.target_features_size()));
  std::vector<int> histories;
  std::set<int> seen;
  for (int i = 0; i < k; ++i) {
    const FieldPath hp = c.At(P("history_features"), i), tp = c.At(P("target_features"), i);
    const int h = FindFeature(job, m.history_features(i)), t = FindFeature(job, m.target_features(i));
    c.Require(h >= 0, hp, "names unknown feature '" + m.history_features(i) + "'");
    const Feature& hf = job.features(h);
    c.Require(hf.type() == Feature::SEQUENCE && hf.pooling() == Feature::CONCAT, hp,
              "feature '" + hf.name() + "' is not a sequence with pooling CONCAT (the history is read item by item)");
    c.Require(seen.insert(h).second, hp, "feature '" + hf.name() + "' is listed twice");
    c.Require(t >= 0, tp, "names unknown feature '" + m.target_features(i) + "'");
    c.Require(job.features(t).type() == Feature::SPARSE, tp, "feature '" + job.features(t).name() + "' is not sparse (the candidate's id)");
    const int hd = TableDim(job, TableNameOf(job, h)), td = TableDim(job, TableNameOf(job, t));
    c.Require(hd == td, tp, "'" + job.features(t).name() + "' has embedding dim " + std::to_string(td) + " but its history '" +
                                hf.name() + "' has " + std::to_string(hd));
    if (same_length && i > 0) {
      const Feature& h0 = job.features(histories[0]);
      c.Require(hf.max_len() == h0.max_len(), hp, "'" + hf.name() + "' has max_len " + std::to_string(hf.max_len()) + " but '" +
                                                      h0.name() + "' has " + std::to_string(h0.max_len()) +
                                                      " (the histories are concatenated step by step)");
    }
    histories.push_back(h);
  }
  if (m.features_size() > 0) {
    PartFeatures(c, job, P("features"), m.features(), [](const Feature& f) { return f.type() == Feature::DENSE || IsPooledOrSparse(f); },
                 "sparse, dense and mean/sum-pooled sequence features");
  }
  CheckMlp(c, P("mlp"), m.mlp());
  return histories;
}

// Two-tower recall models (DSSM, Facebook DSSM): both feature lists, the shared tower fields and
// the towers of their own, whose last widths must agree (user and item vectors meet in a dot
// product).
template <typename M>
void CheckTwoTower(const Checker& c, const Job& job, const FieldPath& p, const M& m) {
  const pb::Descriptor* d = M::descriptor();
  auto P = [&](const char* n) { return c.Path(p, d, {n}); };
  auto flat = [](const Feature& f) { return f.type() == Feature::DENSE || IsPooledOrSparse(f); };
  const char* flat_what = "sparse, dense and mean/sum-pooled sequence features";
  c.Require(m.user_features_size() > 0, P("user_features"), "missing: list the user tower's features");
  c.Require(m.item_features_size() > 0, P("item_features"), "missing: list the item tower's features");
  PartFeatures(c, job, P("user_features"), m.user_features(), flat, flat_what);
  PartFeatures(c, job, P("item_features"), m.item_features(), flat, flat_what);
  for (int i = 0; i < m.hidden_units_size(); ++i) c.Require(m.hidden_units(i) > 0, c.At(P("hidden_units"), i), "must be > 0");
  c.Require(m.embedding_dim() > 0, P("embedding_dim"), "must be > 0");
  const int layers = (m.hidden_units_size() > 0 ? m.hidden_units_size() : 2) + 1;
  c.Require(m.dropout_rates_size() == 0 || m.dropout_rates_size() == layers, P("dropout_rates"),
            "needs one rate per layer (" + std::to_string(layers) + ": hidden_units, then the embedding layer)");
  for (int i = 0; i < m.dropout_rates_size(); ++i)
    c.Require(m.dropout_rates(i) >= 0 && m.dropout_rates(i) < 1, c.At(P("dropout_rates"), i), "must be in [0, 1)");
  c.Require(m.temperature() > 0, P("temperature"), "must be > 0");
  auto last_width = [&](bool has, const Mlp& tower) {
    return has && tower.dims_size() > 0 ? tower.dims(tower.dims_size() - 1) : m.embedding_dim();
  };
  if (m.has_user_tower()) CheckMlp(c, P("user_tower"), m.user_tower());
  if (m.has_item_tower()) CheckMlp(c, P("item_tower"), m.item_tower());
  const int user_dim = last_width(m.has_user_tower(), m.user_tower()), item_dim = last_width(m.has_item_tower(), m.item_tower());
  c.Require(user_dim == item_dim, m.has_item_tower() ? P("item_tower") : P("user_tower"),
            "the towers must end in one width (user " + std::to_string(user_dim) + ", item " + std::to_string(item_dim) +
                "): their vectors meet in a dot product");
}

void CheckYoutubeDnn(const Checker& c, const Job& job, const FieldPath& p, const YoutubeDnn& m) {
  auto P = [&](const char* n) { return c.Path(p, YoutubeDnn::descriptor(), {n}); };
  c.Require(m.user_features_size() > 0, P("user_features"), "missing: list the user tower's features");
  c.Require(m.max_seq_len() >= 1, P("max_seq_len"), "must be >= 1");
  for (int k = 0; k < m.user_features_size(); ++k) {
    const int f = FindFeature(job, m.user_features(k));
    c.Require(f >= 0, c.At(P("user_features"), k), "names unknown feature '" + m.user_features(k) + "'");
    const Feature& feat = job.features(f);
    if (feat.type() == Feature::SEQUENCE && feat.pooling() != Feature::CONCAT)
      c.Require(feat.max_len() <= m.max_seq_len(), c.At(P("user_features"), k),
                "the history '" + feat.name() + "' is pooled over max_len " + std::to_string(feat.max_len()) +
                    " items, more than max_seq_len " + std::to_string(m.max_seq_len()) + " (lower its max_len, or pool it CONCAT)");
  }
  c.Require(m.item_features_size() == 1, P("item_features"), "must name exactly one sparse feature: the item id");
  const int item = FindFeature(job, m.item_features(0));
  c.Require(item >= 0, c.At(P("item_features"), 0), "names unknown feature '" + m.item_features(0) + "'");
  c.Require(job.features(item).type() == Feature::SPARSE, c.At(P("item_features"), 0), "'" + m.item_features(0) + "' must be sparse (the item id)");
  const int item_dim = TableDim(job, TableNameOf(job, item));
  c.Require(!m.has_embedding_dim() || m.embedding_dim() == item_dim, P("embedding_dim"),
            "must equal the item table's dim " + std::to_string(item_dim) + " (the user vector meets the raw item embedding)");
  for (int i = 0; i < m.hidden_units_size(); ++i) c.Require(m.hidden_units(i) > 0, c.At(P("hidden_units"), i), "must be > 0");
  const int layers = (m.hidden_units_size() > 0 ? m.hidden_units_size() : 2) + 1;
  c.Require(m.dropout_rates_size() == 0 || m.dropout_rates_size() == layers, P("dropout_rates"),
            "needs one rate per layer (" + std::to_string(layers) + ": hidden_units, then the embedding layer)");
  for (int i = 0; i < m.dropout_rates_size(); ++i)
    c.Require(m.dropout_rates(i) >= 0 && m.dropout_rates(i) < 1, c.At(P("dropout_rates"), i), "must be in [0, 1)");
  c.Require(m.temperature() > 0, P("temperature"), "must be > 0");
}

bool IsMatchingModel(Model::KindCase k) {
  switch (k) {
    case Model::kDssm: case Model::kFacebookDssm: case Model::kYoutubeDnn: case Model::kGru4Rec:
    case Model::kNarm: case Model::kSasrec: case Model::kMind:
      return true;
    default:
      return false;
  }
}

// The matching block: training negatives and losses, the catalogue key and retrieval evaluation.
void CheckMatching(const Checker& c, const Job& job) {
  if (!job.has_matching()) return;
  const Matching& mt = job.matching();
  c.Require(IsMatchingModel(job.model().kind_case()), c.Root({"matching"}),
            "matching training needs a recall model (dssm, facebook_dssm, youtube_dnn, gru4rec, narm, sasrec, mind)");
  c.Require(job.dist().num_workers() == 1, c.Root({"dist", "num_workers"}), "matching training runs on one worker; use 1");
  auto M = [&](const char* n) { return c.Root({"matching", n}); };
  c.Require(mt.margin() >= 0, M("margin"), "must be >= 0");
  auto sparse_feature = [&](const FieldPath& p, const std::string& name) {
    const int f = FindFeature(job, name);
    c.Require(f >= 0, p, "names unknown feature '" + name + "'");
    c.Require(job.features(f).type() == Feature::SPARSE, p, "'" + name + "' must be a sparse feature (one id per row)");
  };
  if (mt.has_item_feature()) sparse_feature(M("item_feature"), mt.item_feature());
  const MatchingRetrieval& r = mt.retrieval();
  if (mt.has_user_feature() || r.queries() == MatchingRetrieval::LAST_POSITIVE_PER_USER) {
    const std::string user = mt.has_user_feature() ? mt.user_feature() : "user_id";
    c.Require(mt.has_user_feature() || FindFeature(job, user) >= 0, M("user_feature"),
              "missing: no feature 'user_id' groups the rows by user for leave-last-out queries; name the user feature "
              "(or set retrieval.queries: EVERY_POSITIVE)");
    sparse_feature(M("user_feature"), user);
  }
  const MatchingNegatives& n = mt.negatives();
  auto N = [&](const char* f) { return c.Root({"matching", "negatives", f}); };
  c.Require(n.source() == MatchingNegatives::IN_BATCH || n.num_sampled() >= 1, N("num_sampled"), "must be >= 1 with sampled negatives");
  c.Require(n.num_sampled() >= 0, N("num_sampled"), "must be >= 0");
  c.Require(std::isfinite(n.popularity_power()) && n.popularity_power() >= 0, N("popularity_power"), "must be a finite value >= 0");
  c.Require(n.source() != MatchingNegatives::IN_BATCH || job.trainer().batch_size() >= 2, c.Root({"trainer", "batch_size"}),
            "in-batch negatives need batches of at least 2 rows");
  auto R = [&](const char* f) { return c.Root({"matching", "retrieval", f}); };
  std::set<int> ks;
  for (int i = 0; i < r.top_k_size(); ++i) {
    c.Require(r.top_k(i) >= 1, c.At(R("top_k"), i), "must be >= 1");
    ks.insert(r.top_k(i));
  }
  if (ks.empty()) ks = {10, 50, 100};
  const std::string& metric = r.metric();
  const size_t at = metric.find('@');
  const std::string name = metric.substr(0, at);
  int k = 0;
  if (at != std::string::npos && at + 1 < metric.size() && metric.size() - at <= 7 && metric.find_first_not_of("0123456789", at + 1) == std::string::npos)
    k = std::stoi(metric.substr(at + 1));
  c.Require((name == "recall" || name == "hit" || name == "ndcg" || name == "mrr") && ks.count(k) == 1, R("metric"),
            "must be recall@K, hit@K, ndcg@K or mrr@K with K one of retrieval.top_k, got \"" + metric + "\"");
  if (r.has_history_feature()) {
    const int h = FindFeature(job, r.history_feature());
    c.Require(h >= 0, R("history_feature"), "names unknown feature '" + r.history_feature() + "'");
    c.Require(job.features(h).type() == Feature::SEQUENCE, R("history_feature"), "'" + r.history_feature() + "' is not a sequence feature");
  }
  c.Require(r.faiss_nprobe() >= 1, R("faiss_nprobe"), "must be >= 1");
  c.Require(!r.faiss_index().empty(), R("faiss_index"), "must not be empty (e.g. \"Flat\", \"IVF1024,Flat\")");
  c.Require(r.query_batch_size() >= 1, R("query_batch_size"), "must be >= 1");
  c.Require(r.item_batch_size() >= 1, R("item_batch_size"), "must be >= 1");
  c.Require(r.max_queries() >= 0, R("max_queries"), "must be >= 0 (0 = all)");
}

// -- multi-task family (SharedBottom, Esmm, Mmoe, Ple): one task per label column.
bool IsMultiTaskModel(Model::KindCase k) {
  return k == Model::kSharedBottom || k == Model::kEsmm || k == Model::kMmoe || k == Model::kPle;
}

// `no_shared_layer`: why GradNorm cannot run on this model ("" when it can).
void CheckMultiTaskLoss(const Checker& c, const FieldPath& p, const MultiTaskLoss& l, int num_tasks,
                        const std::string& no_shared_layer) {
  auto P = [&](const char* n) { return c.Path(p, MultiTaskLoss::descriptor(), {n}); };
  c.Require(l.weights_size() == 0 || l.weights_size() == num_tasks, P("weights"),
            "needs one weight per task (" + std::to_string(num_tasks) + "), got " + std::to_string(l.weights_size()));
  float sum = 0;
  for (int i = 0; i < l.weights_size(); ++i) {
    c.Require(l.weights(i) >= 0 && l.weights(i) <= 1e30f, c.At(P("weights"), i), "must be a number >= 0");
    sum += l.weights(i);
  }
  if (l.kind() == MultiTaskLoss::UWL) c.Require(l.weights_size() == 0, P("weights"), "UWL learns its weights; leave weights out");
  if (l.kind() == MultiTaskLoss::GRADNORM) {
    c.Require(no_shared_layer.empty(), P("kind"), "GradNorm needs a dense layer that every task shares: " + no_shared_layer);
    c.Require(l.weights_size() == 0 || sum > 0, P("weights"), "GradNorm needs a starting weight > 0");
    c.Require(l.gradnorm_alpha() >= 0, P("gradnorm_alpha"), "must be >= 0");
  }
}

// num_tasks, task_types and towers of SharedBottom, Mmoe and Ple; returns the number of tasks.
template <typename M>
int CheckTasks(const Checker& c, const FieldPath& p, const M& m, int num_labels) {
  auto P = [&](const char* n) { return c.Path(p, M::descriptor(), {n}); };
  c.Require(!m.has_num_tasks() || m.num_tasks() >= 1, P("num_tasks"), "must be >= 1");
  const int tasks = m.num_tasks() > 0 ? m.num_tasks() : m.task_types_size() > 0 ? m.task_types_size() : num_labels;
  c.Require(tasks == num_labels, m.num_tasks() > 0 ? P("num_tasks") : P("task_types"),
            std::to_string(tasks) + " tasks, but " + std::to_string(num_labels) + " label column(s) (data.label_columns: one per task)");
  c.Require(m.task_types_size() == 0 || m.task_types_size() == tasks, P("task_types"),
            "needs one type per task (" + std::to_string(tasks) + ")");
  for (int i = 0; i < m.task_types_size(); ++i)
    c.Require(m.task_types(i) == "classification" || m.task_types(i) == "regression", c.At(P("task_types"), i),
              "'" + m.task_types(i) + "' is not a task type; use \"classification\" or \"regression\"");
  c.Require(m.towers_size() <= 1 || m.towers_size() == tasks, P("towers"),
            "give one tower for every task, or one per task (" + std::to_string(tasks) + ")");
  for (int k = 0; k < m.towers_size(); ++k) CheckMlp(c, c.At(P("towers"), k), m.towers(k));
  return tasks;
}

void CheckMultiTaskModel(const Checker& c, const Job& job, int num_labels) {
  const Model& m = job.model();
  auto flat = [](const Feature& f) { return f.type() == Feature::DENSE || IsPooledOrSparse(f); };
  const char* flat_what = "sparse, dense and mean/sum-pooled sequence features";
  switch (m.kind_case()) {
    case Model::kSharedBottom: {
      const SharedBottom& s = m.shared_bottom();
      FieldPath p = c.Root({"model", "shared_bottom"});
      auto P = [&](const char* n) { return c.Path(p, SharedBottom::descriptor(), {n}); };
      PartFeatures(c, job, P("features"), s.features(), flat, flat_what);
      CheckMlp(c, P("bottom"), s.bottom());
      CheckMultiTaskLoss(c, P("loss"), s.loss(), CheckTasks(c, p, s, num_labels), "");
      break;
    }
    case Model::kEsmm: {
      const Esmm& e = m.esmm();
      FieldPath p = c.Root({"model", "esmm"});
      auto P = [&](const char* n) { return c.Path(p, Esmm::descriptor(), {n}); };
      PartFeatures(c, job, P("features"), e.features(), flat, flat_what);
      c.Require(num_labels == 2, c.Root({"data", "label_columns"}),
                "ESMM needs two label columns: the click, then the conversion (e.g. [\"click\", \"purchase\"])");
      CheckMlp(c, P("bottom"), e.bottom());
      c.Require(e.towers_size() <= 2, P("towers"), "give one tower for both tasks, or two (CTR, then CVR)");
      for (int k = 0; k < e.towers_size(); ++k) CheckMlp(c, c.At(P("towers"), k), e.towers(k));
      CheckMultiTaskLoss(c, P("loss"), e.loss(), 2,
                         e.bottom().dims_size() > 0 ? "" : "ESMM's towers share only the embeddings; give it a bottom { dims: [...] }");
      break;
    }
    case Model::kMmoe: {
      const Mmoe& x = m.mmoe();
      FieldPath p = c.Root({"model", "mmoe"});
      auto P = [&](const char* n) { return c.Path(p, Mmoe::descriptor(), {n}); };
      PartFeatures(c, job, P("features"), x.features(), flat, flat_what);
      c.Require(x.num_experts() >= 1, P("num_experts"), "must be >= 1");
      CheckMlp(c, P("expert"), x.expert());
      CheckMultiTaskLoss(c, P("loss"), x.loss(), CheckTasks(c, p, x, num_labels), "");
      break;
    }
    case Model::kPle: {
      const Ple& x = m.ple();
      FieldPath p = c.Root({"model", "ple"});
      auto P = [&](const char* n) { return c.Path(p, Ple::descriptor(), {n}); };
      PartFeatures(c, job, P("features"), x.features(), flat, flat_what);
      c.Require(x.num_layers() >= 1, P("num_layers"), "must be >= 1");
      c.Require(x.num_experts() >= 1, P("num_experts"), "must be >= 1");
      c.Require(x.num_shared_experts() >= 0, P("num_shared_experts"), "must be >= 0");
      CheckMlp(c, P("expert"), x.expert());
      CheckMultiTaskLoss(c, P("loss"), x.loss(), CheckTasks(c, p, x, num_labels),
                         x.num_shared_experts() > 0 ? "" : "with num_shared_experts: 0 no expert of the last level is shared");
      break;
    }
    default:
      break;
  }
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
    case Model::kDcn: {
      FieldPath p = c.Root({"model", "dcn"});
      PartFeatures(c, job, c.Path(p, Dcn::descriptor(), {"features"}), m.dcn().features(), flat, flat_what);
      c.Require(m.dcn().cross_num() >= 1, c.Path(p, Dcn::descriptor(), {"cross_num"}), "must be >= 1");
      CheckMlp(c, c.Path(p, Dcn::descriptor(), {"mlp"}), m.dcn().mlp());
      break;
    }
    case Model::kDcnv2: {
      FieldPath p = c.Root({"model", "dcnv2"});
      const DcnV2& v2 = m.dcnv2();
      PartFeatures(c, job, c.Path(p, DcnV2::descriptor(), {"features"}), v2.features(), flat, flat_what);
      c.Require(v2.cross_num() >= 1, c.Path(p, DcnV2::descriptor(), {"cross_num"}), "must be >= 1");
      c.Require(v2.low_rank() >= 1, c.Path(p, DcnV2::descriptor(), {"low_rank"}), "must be >= 1");
      c.Require(v2.num_experts() >= 1, c.Path(p, DcnV2::descriptor(), {"num_experts"}), "must be >= 1");
      CheckMlp(c, c.Path(p, DcnV2::descriptor(), {"mlp"}), v2.mlp());
      break;
    }
    case Model::kEdcn: {
      FieldPath p = c.Root({"model", "edcn"});
      const Edcn& e = m.edcn();
      PartFeatures(c, job, c.Path(p, Edcn::descriptor(), {"features"}), e.features(), flat, flat_what);
      c.Require(e.cross_num() >= 1, c.Path(p, Edcn::descriptor(), {"cross_num"}), "must be >= 1");
      c.Require(e.temperature() > 0, c.Path(p, Edcn::descriptor(), {"temperature"}), "must be > 0");
      // The deep blocks are [D, D] (D = input width): two hidden layers whose widths are fixed.
      FieldPath mlp = c.Path(p, Edcn::descriptor(), {"mlp"});
      c.Require(e.mlp().dims_size() == 0, c.Path(mlp, Mlp::descriptor(), {"dims"}),
                "EDCN's deep blocks are fixed at [D, D] (D = input width); leave dims empty");
      c.Require(e.mlp().dropout_rates_size() == 0 || e.mlp().dropout_rates_size() == 2, c.Path(mlp, Mlp::descriptor(), {"dropout_rates"}),
                "needs one rate per hidden layer of a deep block (2)");
      Mlp two_layers = e.mlp();
      two_layers.add_dims(1);
      two_layers.add_dims(1);
      CheckMlp(c, mlp, two_layers);  // dropout and rate ranges
      break;
    }
    case Model::kAfm: {
      FieldPath p = c.Root({"model", "afm"});
      const Afm& afm = m.afm();
      FieldPath features = c.Path(p, Afm::descriptor(), {"features"});
      auto fields = PartFeatures(c, job, features, afm.features(), [](const Feature& f) { return IsPooledOrSparse(f); },
                                 "sparse and mean/sum-pooled sequence features");
      CheckInteractingFields(c, job, features, !afm.features().empty(), fields, "AFM");
      for (int k = 0; k < afm.attention_units_size(); ++k)
        c.Require(afm.attention_units(k) >= 1, c.At(c.Path(p, Afm::descriptor(), {"attention_units"}), k), "must be >= 1");
      c.Require(afm.dropout_rate() >= 0 && afm.dropout_rate() < 1, c.Path(p, Afm::descriptor(), {"dropout_rate"}), "must be in [0, 1)");
      break;
    }
    case Model::kFibinet: {
      FieldPath p = c.Root({"model", "fibinet"});
      const FiBiNet& fib = m.fibinet();
      FieldPath features = c.Path(p, FiBiNet::descriptor(), {"features"});
      auto fields = PartFeatures(c, job, features, fib.features(), flat, flat_what);
      CheckInteractingFields(c, job, features, !fib.features().empty(), fields, "FiBiNET");
      c.Require(fib.reduction_ratio() >= 1, c.Path(p, FiBiNet::descriptor(), {"reduction_ratio"}), "must be >= 1");
      const std::string& type = fib.bilinear_type();
      c.Require(type == "field_all" || type == "field_each" || type == "field_interaction",
                c.Path(p, FiBiNet::descriptor(), {"bilinear_type"}),
                "unknown bilinear type \"" + type + "\" (use field_all, field_each or field_interaction)");
      CheckMlp(c, c.Path(p, FiBiNet::descriptor(), {"mlp"}), fib.mlp());
      break;
    }
    case Model::kDien: {
      const Dien& d = m.dien();
      FieldPath p = c.Root({"model", "dien"});
      auto P = [&](const char* n) { return c.Path(p, Dien::descriptor(), {n}); };
      auto concat = [](const Feature& f) { return f.type() == Feature::SEQUENCE && f.pooling() == Feature::CONCAT; };
      const char* concat_what = "sequence features with pooling CONCAT";
      const int k_hist = d.history_features_size();
      c.Require(k_hist > 0, P("history_features"), "missing: name the behaviour sequences (sequence features with pooling CONCAT)");
      auto hist = PartFeatures(c, job, P("history_features"), d.history_features(), concat, concat_what);
      c.Require(d.target_features_size() == k_hist, P("target_features"),
                "needs one target per history feature (" + std::to_string(k_hist) + "), got " + std::to_string(d.target_features_size()));
      PartFeatures(c, job, P("target_features"), d.target_features(), [](const Feature& f) { return f.type() == Feature::SPARSE; }, "sparse features");
      c.Require(d.alpha() >= 0 && std::isfinite(d.alpha()), P("alpha"), "must be a finite value >= 0");
      if (d.neg_history_features_size() > 0 || d.alpha() > 0) {
        c.Require(d.neg_history_features_size() == k_hist, P("neg_history_features"),
                  "needs one negative sequence per history feature (" + std::to_string(k_hist) + ") for the auxiliary loss; got " +
                      std::to_string(d.neg_history_features_size()) + " (an empty list needs alpha: 0)");
        auto neg = PartFeatures(c, job, P("neg_history_features"), d.neg_history_features(), concat, concat_what);
        for (int k = 0; k < k_hist; ++k) {
          const Feature &h = job.features(hist[k]), &n = job.features(neg[k]);
          c.Require(TableDim(job, TableNameOf(job, neg[k])) == TableDim(job, TableNameOf(job, hist[k])) && n.max_len() == h.max_len(),
                    c.At(P("neg_history_features"), k), "'" + n.name() + "' must have the embedding dim and max_len of its history '" + h.name() + "'");
        }
      }
      const int units = d.interest_units_size();
      c.Require(units == 0 || units == 1 || units == k_hist, P("interest_units"),
                "give none (the history dims), one for all, or one per history feature (" + std::to_string(k_hist) + ")");
      for (int k = 0; k < units; ++k) c.Require(d.interest_units(k) > 0, c.At(P("interest_units"), k), "must be > 0");
      if (d.features_size() > 0) PartFeatures(c, job, P("features"), d.features(), flat, flat_what);
      CheckMlp(c, P("mlp"), d.mlp());
      break;
    }
    case Model::kDssm:
      CheckTwoTower(c, job, c.Root({"model", "dssm"}), m.dssm());
      break;
    case Model::kFacebookDssm: {
      const FacebookDssm& fb = m.facebook_dssm();
      FieldPath p = c.Root({"model", "facebook_dssm"});
      auto P = [&](const char* n) { return c.Path(p, FacebookDssm::descriptor(), {n}); };
      CheckTwoTower(c, job, p, fb);
      c.Require(fb.num_tasks() >= 1, P("num_tasks"), "must be >= 1 (the retrieval task)");
      c.Require(fb.task_types_size() == 0 || fb.task_types_size() == fb.num_tasks(), P("task_types"),
                "give one type per task (" + std::to_string(fb.num_tasks()) + "), or none");
      for (int t = 0; t < fb.task_types_size(); ++t) {
        const std::string& type = fb.task_types(t);
        c.Require(t == 0 ? type == "matching" : (type == "classification" || type == "regression"), c.At(P("task_types"), t),
                  t == 0 ? "task 1 is the retrieval task: \"matching\", got \"" + type + "\""
                         : "must be \"classification\" or \"regression\", got \"" + type + "\"");
      }
      c.Require(fb.auxiliary_weight() >= 0, P("auxiliary_weight"), "must be >= 0");
      // One label column per task: the retrieval label, then each auxiliary task's.
      c.Require(num_labels == fb.num_tasks(), c.Root({"data", "label_columns"}),
                std::to_string(fb.num_tasks()) + " tasks need " + std::to_string(fb.num_tasks()) + " label columns, " +
                    std::to_string(num_labels) + " are configured");
      return;
    }
    case Model::kYoutubeDnn:
      CheckYoutubeDnn(c, job, c.Root({"model", "youtube_dnn"}), m.youtube_dnn());
      break;
    case Model::kGru4Rec: {
      const Gru4Rec& g = m.gru4rec();
      FieldPath p = c.Root({"model", "gru4rec"});
      auto P = [&](const char* n) { return c.Path(p, Gru4Rec::descriptor(), {n}); };
      SequenceRecallFeatures f = CheckSequenceRecall(c, job, p, g);
      if (g.user_features_size() > 0) PartFeatures(c, job, P("user_features"), g.user_features(), flat, flat_what);
      c.Require(!g.has_hidden_size() || g.hidden_size() > 0, P("hidden_size"), "must be > 0");
      c.Require(g.num_layers() > 0, P("num_layers"), "must be > 0");
      c.Require(g.dropout_rate() >= 0 && g.dropout_rate() < 1, P("dropout_rate"), "must be in [0, 1)");
      CheckMlp(c, P("mlp"), g.mlp());
      const int last = g.mlp().dims_size() > 0 ? g.mlp().dims(g.mlp().dims_size() - 1) : f.item_dim;
      c.Require(last == f.item_dim, c.Path(P("mlp"), Mlp::descriptor(), {"dims"}),
                "the last width must equal the item embedding dim " + std::to_string(f.item_dim) + " (user and item vectors meet in a dot product)");
      break;
    }
    case Model::kNarm: {
      const Narm& n = m.narm();
      FieldPath p = c.Root({"model", "narm"});
      auto P = [&](const char* name) { return c.Path(p, Narm::descriptor(), {name}); };
      CheckSequenceRecall(c, job, p, n);
      c.Require(!n.has_hidden_size() || n.hidden_size() > 0, P("hidden_size"), "must be > 0");
      c.Require(!n.has_attention_size() || n.attention_size() > 0, P("attention_size"), "must be > 0");
      c.Require(n.embedding_dropout_rate() >= 0 && n.embedding_dropout_rate() < 1, P("embedding_dropout_rate"), "must be in [0, 1)");
      c.Require(n.dropout_rate() >= 0 && n.dropout_rate() < 1, P("dropout_rate"), "must be in [0, 1)");
      break;
    }
    case Model::kSasrec: {
      const SasRec& s = m.sasrec();
      FieldPath p = c.Root({"model", "sasrec"});
      auto P = [&](const char* n) { return c.Path(p, SasRec::descriptor(), {n}); };
      SequenceRecallFeatures f = CheckSequenceRecall(c, job, p, s);
      c.Require(f.item_dim == f.history_dim, P("item_feature"),
                "the item embedding dim " + std::to_string(f.item_dim) + " must equal the history's " + std::to_string(f.history_dim) +
                    " (sequence outputs are scored against item embeddings)");
      const int history_len = job.features(f.history).max_len();
      c.Require(s.max_len() >= history_len, P("max_len"),
                "must be >= the history's max_len " + std::to_string(history_len) + " (one position row each)");
      c.Require(s.num_heads() > 0 && f.history_dim % s.num_heads() == 0, P("num_heads"),
                "must be > 0 and divide the embedding dim " + std::to_string(f.history_dim));
      c.Require(s.num_layers() > 0, P("num_layers"), "must be > 0");
      c.Require(!s.has_hidden_size() || s.hidden_size() > 0, P("hidden_size"), "must be > 0");
      c.Require(s.dropout_rate() >= 0 && s.dropout_rate() < 1, P("dropout_rate"), "must be in [0, 1)");
      break;
    }
    case Model::kMind: {
      const Mind& mi = m.mind();
      FieldPath p = c.Root({"model", "mind"});
      auto P = [&](const char* n) { return c.Path(p, Mind::descriptor(), {n}); };
      CheckSequenceRecall(c, job, p, mi);
      if (mi.user_features_size() > 0) PartFeatures(c, job, P("user_features"), mi.user_features(), flat, flat_what);
      c.Require(mi.num_interests() > 0, P("num_interests"), "must be > 0");
      c.Require(mi.routing_iterations() > 0, P("routing_iterations"), "must be > 0");
      c.Require(!mi.has_hidden_size() || mi.hidden_size() > 0, P("hidden_size"), "must be > 0");
      break;
    }
    case Model::kDin: {
      const Din& d = m.din();
      FieldPath p = c.Root({"model", "din"});
      CheckBehaviourPairs(c, job, p, d, /*same_length=*/false);
      for (int k = 0; k < d.attention_units_size(); ++k)
        c.Require(d.attention_units(k) > 0, c.At(c.Path(p, Din::descriptor(), {"attention_units"}), k), "must be > 0");
      break;
    }
    case Model::kBst: {
      const Bst& b = m.bst();
      FieldPath p = c.Root({"model", "bst"});
      auto P = [&](const char* n) { return c.Path(p, Bst::descriptor(), {n}); };
      const std::vector<int> histories = CheckBehaviourPairs(c, job, p, b, /*same_length=*/true);
      int width = 0;
      for (int h : histories) width += TableDim(job, TableNameOf(job, h));
      c.Require(b.num_heads() > 0 && width % b.num_heads() == 0, P("num_heads"),
                "must be > 0 and divide the item width " + std::to_string(width) + " (the sum of the history dims)");
      c.Require(b.num_layers() > 0, P("num_layers"), "must be > 0");
      c.Require(b.hidden_size() > 0, P("hidden_size"), "must be > 0");
      c.Require(b.dropout_rate() >= 0 && b.dropout_rate() < 1, P("dropout_rate"), "must be in [0, 1)");
      const int len = job.features(histories[0]).max_len();
      c.Require(b.max_seq_len() >= len + 1, P("max_seq_len"),
                "must be >= max_len + 1 = " + std::to_string(len + 1) + " (the history steps and the target)");
      break;
    }
    default:
      break;
  }
  if (IsMultiTaskModel(m.kind_case())) {
    CheckMultiTaskModel(c, job, num_labels);
  } else {
    c.Require(num_labels == 1, c.Root({"data", "label_columns"}), "this model predicts one label; " + std::to_string(num_labels) + " label columns are configured");
  }
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
  c.Require(t.checkpoint_every_steps() >= 0, c.Root({"trainer", "checkpoint_every_steps"}), "must be >= 0 (0 = at epoch ends)");
  c.Require(t.keep_checkpoints() >= 1, c.Root({"trainer", "keep_checkpoints"}), "must be >= 1");
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
  const Dist& d = job.dist();
  c.Require(d.num_workers() >= 1, c.Root({"dist", "num_workers"}), "must be >= 1");
  c.Require(d.num_ps() >= 1, c.Root({"dist", "num_ps"}), "must be >= 1");
  c.Require(d.bucket_mib() > 0, c.Root({"dist", "bucket_mib"}), "must be > 0");
  c.Require(d.timeout_s() > 0, c.Root({"dist", "timeout_s"}), "must be > 0");
}

}  // namespace

void ValidateJob(const Job& job, const ConfigLocator& locator) {
  Checker c(job, locator);
  CheckData(c, job);
  CheckTables(c, job);
  CheckFeatures(c, job);
  CheckModel(c, job);
  CheckMatching(c, job);
  CheckTrainer(c, job);
  CheckDistribution(c, job);
}

}  // namespace shardrec::config

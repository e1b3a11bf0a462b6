#include "data/feature_schema.h"

#include "config/job_resolution.h"
#include "shardrec/config.pb.h"

namespace shardrec::data {

namespace {

ps::InitSpec ToInit(const config::Initializer& i) {
  ps::InitSpec s;
  s.kind = i.kind() == config::Initializer::UNIFORM ? ps::InitSpec::Kind::kUniform
           : i.kind() == config::Initializer::ZEROS ? ps::InitSpec::Kind::kZeros
                                                     : ps::InitSpec::Kind::kNormal;
  s.mean = i.mean();
  s.std = i.std();
  s.low = i.low();
  s.high = i.high();
  s.seed = i.seed();
  return s;
}

ps::OptimizerSpec ToOptimizer(const config::RowOptimizer& o) {
  ps::OptimizerSpec s;
  switch (o.kind()) {
    case config::RowOptimizer::ADAGRAD: s.kind = ps::OptimizerSpec::Kind::kAdagrad; break;
    case config::RowOptimizer::SGD: s.kind = ps::OptimizerSpec::Kind::kSgd; break;
    case config::RowOptimizer::ROWWISE_ADAGRAD: s.kind = ps::OptimizerSpec::Kind::kRowwiseAdagrad; break;
    case config::RowOptimizer::FTRL: s.kind = ps::OptimizerSpec::Kind::kFtrl; break;
    default: s.kind = ps::OptimizerSpec::Kind::kAdam; break;
  }
  s.lr = o.lr();
  s.beta1 = o.beta1();
  s.beta2 = o.beta2();
  // LibTorch's defaults, so that a row trains like the same row of a dense torch table.
  s.eps = o.has_eps() ? o.eps() : (s.kind == ps::OptimizerSpec::Kind::kAdagrad ? 1e-10f : 1e-8f);
  s.initial_accumulator = o.initial_accumulator();
  s.weight_decay = o.weight_decay();
  s.ftrl_beta = o.ftrl_beta();
  s.l1 = o.l1();
  s.l2 = o.l2();
  s.lr_power = o.lr_power();
  return s;
}

}  // namespace

int FeatureSchema::Find(const std::string& name) const {
  for (size_t i = 0; i < features.size(); ++i)
    if (features[i].name == name) return static_cast<int>(i);
  return -1;
}

FeatureSchema BuildSchema(const config::Job& job) {
  FeatureSchema schema;
  auto table_index = [&](const std::string& name) {
    for (size_t t = 0; t < schema.tables.size(); ++t)
      if (schema.tables[t].name == name) return static_cast<int>(t);
    ps::TableSpec spec;
    spec.name = name;
    spec.dim = config::TableDim(job, name);
    int declared = config::FindTable(job, name);
    const config::Table* t = declared >= 0 ? &job.tables(declared) : nullptr;
    spec.init = ToInit(t && t->has_init() ? t->init() : job.embedding().init());
    spec.optimizer = ToOptimizer(t && t->has_optimizer() ? t->optimizer() : job.embedding().optimizer());
    schema.tables.push_back(spec);
    return static_cast<int>(schema.tables.size() - 1);
  };

  for (int i = 0; i < job.features_size(); ++i) {
    const config::Feature& f = job.features(i);
    FeatureSpec s;
    s.name = f.name();
    s.column = f.has_column() ? f.column() : f.name();
    if (f.type() == config::Feature::DENSE) {
      s.kind = FeatureKind::kDense;
      s.dense_index = schema.num_dense++;
      s.transform = f.transform() == config::Feature::LOG      ? DenseTransform::kLog
                    : f.transform() == config::Feature::MINMAX ? DenseTransform::kMinMax
                                                               : DenseTransform::kNone;
      s.min = f.min();
      s.max = f.max();
      s.fill = f.fill();
    } else {
      s.kind = f.type() == config::Feature::SEQUENCE ? FeatureKind::kSequence : FeatureKind::kSparse;
      s.table = table_index(config::TableNameOf(job, i));
      s.dim = schema.tables[s.table].dim;
      s.sparse_index = schema.num_sparse++;
      s.pooling = f.pooling() == config::Feature::SUM      ? Pooling::kSum
                  : f.pooling() == config::Feature::CONCAT ? Pooling::kConcat
                                                           : Pooling::kMean;
      s.max_len = f.max_len();
      s.separator = f.separator().empty() ? '|' : f.separator()[0];
      s.padding.assign(f.padding().begin(), f.padding().end());
    }
    schema.features.push_back(std::move(s));
  }

  const config::Data& d = job.data();
  schema.label_columns.assign(d.label_columns().begin(), d.label_columns().end());
  if (schema.label_columns.empty()) {
    if (d.has_synthetic() && d.synthetic().kind() == config::Synthetic::MTL)
      schema.label_columns = {"click", "purchase"};
    else
      schema.label_columns = {"label"};
  }
  schema.group_column = d.group_column();
  return schema;
}

}  // namespace shardrec::data

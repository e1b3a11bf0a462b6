#include "train/trainer.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "data/feature_schema.h"
#include "models/model.h"
#include "ps/auth_token.h"
#include "ps/ps_client.h"
#include "ps/remote_ps_client.h"
#include "train/async_pusher.h"
#include "train/data_sources.h"
#include "train/embedding_assembler.h"
#include "train/metrics.h"
#include "train/prefetcher.h"
#include "train/progress.h"

namespace shardrec::train {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const config::DenseOptimizer& o,
                                                       std::vector<torch::Tensor> params) {
  switch (o.kind()) {
    case config::DenseOptimizer::ADAGRAD:
      return std::make_unique<torch::optim::Adagrad>(
          params, torch::optim::AdagradOptions(o.lr()).weight_decay(o.weight_decay()).eps(o.has_eps() ? o.eps() : 1e-10));
    case config::DenseOptimizer::SGD:
      return std::make_unique<torch::optim::SGD>(
          params, torch::optim::SGDOptions(o.lr()).momentum(o.momentum()).weight_decay(o.weight_decay()));
    case config::DenseOptimizer::ADAMW:
      return std::make_unique<torch::optim::AdamW>(params, torch::optim::AdamWOptions(o.lr())
                                                               .betas({o.beta1(), o.beta2()})
                                                               .eps(o.eps())
                                                               .weight_decay(o.weight_decay()));
    default:
      return std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(o.lr())
                                                              .betas({o.beta1(), o.beta2()})
                                                              .eps(o.eps())
                                                              .weight_decay(o.weight_decay()));
  }
}

// Learning rate of epoch `e` (0-based) under the configured schedule.
double ScheduledLr(const config::Trainer& t, int e) {
  const double lr = t.optimizer().lr();
  const config::Scheduler& s = t.scheduler();
  switch (s.kind()) {
    case config::Scheduler::STEP: return lr * std::pow(s.gamma(), e / s.step_size());
    case config::Scheduler::EXPONENTIAL: return lr * std::pow(s.gamma(), e);
    case config::Scheduler::COSINE:
      return s.min_lr() + 0.5 * (lr - s.min_lr()) * (1 + std::cos(M_PI * e / std::max(1, t.epochs())));
    default: return lr;
  }
}

// A deep copy of every parameter and buffer, to restore the best epoch's dense weights.
std::vector<torch::Tensor> Snapshot(torch::nn::Module& m) {
  std::vector<torch::Tensor> out;
  for (auto& p : m.parameters()) out.push_back(p.detach().clone());
  for (auto& b : m.buffers()) out.push_back(b.detach().clone());
  return out;
}

void Restore(torch::nn::Module& m, const std::vector<torch::Tensor>& snap) {
  torch::NoGradGuard ng;
  size_t i = 0;
  for (auto& p : m.parameters()) p.copy_(snap[i++]);
  for (auto& b : m.buffers()) b.copy_(snap[i++]);
}

std::string Num(double v) {
  if (!std::isfinite(v)) return "null";
  std::ostringstream s;
  s.precision(8);
  s << v;
  return s.str();
}

std::string MetricsObject(const MetricSet& m) {
  std::string s = "{";
  bool first = true;
  for (const auto& [k, v] : m) {
    s += (first ? "\"" : ", \"") + k + "\": " + Num(v);
    first = false;
  }
  return s + "}";
}

// Milliseconds per step of each phase of an epoch's step loop.
std::string PhaseMs(const EpochReport& e) {
  MetricSet ms;
  for (const auto& [k, v] : e.phase_seconds) ms[k] = e.steps ? 1000.0 * v / e.steps : 0;
  return MetricsObject(ms);
}

// The embedded PS: shards in this process, on RocksDB under the run's folder unless
// ps.memory_only. A run starts from fresh tables: rows a previous run left in the default folder
// are removed; an explicitly named folder that already holds rows is refused rather than mixed
// into a new run's fresh dense weights.
std::string EmbeddedPsDir(const config::Job& job, const std::string& output_dir) {
  const config::Ps& pc = job.ps();
  if (pc.memory_only() || pc.addresses_size() > 0) return "";
  return pc.has_data_dir() ? pc.data_dir() : (fs::path(output_dir) / "ps").string();
}

// `fresh`: a new run (clears the default folder); else reopen what is there (after a rollback).
std::unique_ptr<ps::PsClient> MakeEmbeddedPs(const config::Job& job, const data::FeatureSchema& schema,
                                             const std::string& output_dir, bool fresh) {
  const config::Ps& pc = job.ps();
  if (pc.addresses_size() > 0) {  // remote shards (`shardrec ps`), one address per shard
    ps::RemotePsOptions ro;
    ro.token = ps::LoadPsToken(pc.token_file()).value;
    ro.rpc_timeout_s = pc.rpc_timeout_s();
    ro.max_attempts = pc.max_attempts();
    ro.connect_timeout_s = pc.connect_timeout_s();
    LogLine("parameter servers: " + std::to_string(pc.addresses_size()) + " remote shards");
    return std::make_unique<ps::RemotePsClient>(std::vector<std::string>(pc.addresses().begin(), pc.addresses().end()),
                                                schema.tables, ro);
  }
  ps::InProcessOptions o;
  o.num_shards = pc.num_shards();
  if (!pc.memory_only()) {
    o.data_dir = EmbeddedPsDir(job, output_dir);
    std::error_code ec;
    if (fresh && fs::exists(o.data_dir) && !fs::is_empty(o.data_dir, ec)) {
      if (pc.has_data_dir())
        throw UserError("ps.data_dir " + o.data_dir + " already holds parameter-server rows; remove it or name another folder");
      fs::remove_all(o.data_dir);
    }
    o.cache_bytes = pc.cache_bytes();
    o.sync_pushes = pc.sync_pushes();
    o.flush_log_bytes = pc.flush_log_bytes();
    // The trainer is the only client and dies with its shards: a crash loses the run's dense
    // state too, so per-push logging buys nothing here (checkpoints are the durability point).
    o.log_pushes = pc.sync_pushes();
  }
  return ps::MakeInProcessPs(schema.tables, o);
}

}  // namespace

struct Trainer::Impl {
  config::Job job;
  std::string output_dir;
  data::FeatureSchema schema;
  DataSources sources;
  std::unique_ptr<ps::PsClient> ps;
  std::shared_ptr<models::Model> model;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  Progress::Mode progress_mode = Progress::Mode::kAuto;

  MetricSet Evaluate(const DataPart& part, const std::string& label);
  EpochReport TrainEpoch(int epoch, double* step_seconds);
};

Trainer::Trainer(config::Job job, std::string output_dir) : impl_(std::make_unique<Impl>()) {
  impl_->job = std::move(job);
  impl_->output_dir = std::move(output_dir);
}

Trainer::~Trainer() = default;

MetricSet Trainer::Impl::Evaluate(const DataPart& part, const std::string& label) {
  const config::Trainer& t = job.trainer();
  data::PipelineOptions opts = part.options;
  opts.batch_size = t.eval_batch_size();
  opts.shuffle_buffer = 0;
  data::BatchPipeline pipeline(schema, part.files, opts);
  Prefetcher prefetch(schema, &pipeline, ps.get(), t.prefetch_depth(), /*read_only=*/true);

  const int tasks = model->num_tasks();
  std::vector<std::vector<float>> probs(tasks), labels(tasks);
  std::vector<uint64_t> groups;
  model->eval();
  {
    torch::NoGradGuard no_grad;
    while (auto pb = prefetch.Next()) {
      {
        AssembledBatch a = Assemble(schema, *pb, /*requires_grad=*/false);
        torch::Tensor p = model->Predict(model->forward(a.input)).reshape({a.labels.size(0), tasks}).contiguous();
        const float* pp = p.data_ptr<float>();
        const float* lp = pb->batch.labels.data();
        const int nl = pb->batch.num_labels;
        for (int64_t r = 0; r < pb->batch.rows; ++r)
          for (int k = 0; k < tasks; ++k) {
            probs[k].push_back(pp[r * tasks + k]);
            labels[k].push_back(lp[r * nl + k]);
          }
        groups.insert(groups.end(), pb->batch.groups.begin(), pb->batch.groups.end());
      }
      prefetch.Recycle(std::move(pb));
    }
  }
  model->train();

  MetricSet m;
  for (int k = 0; k < tasks; ++k) {
    const std::string suffix = tasks == 1 ? "" : "_" + schema.label_columns[k];
    const int64_t n = static_cast<int64_t>(probs[k].size());
    if (model->task_kind(k) == models::TaskKind::kRegression) {
      m["mse" + suffix] = MeanSquaredError(probs[k].data(), labels[k].data(), n);
      m["mae" + suffix] = MeanAbsoluteError(probs[k].data(), labels[k].data(), n);
      continue;
    }
    m["auc" + suffix] = Auc(probs[k].data(), labels[k].data(), n);
    m["logloss" + suffix] = LogLoss(probs[k].data(), labels[k].data(), n);
    if (!groups.empty() && static_cast<int64_t>(groups.size()) == n)
      m["gauc" + suffix] = Gauc(probs[k].data(), labels[k].data(), groups.data(), n);
  }
  m["rows"] = static_cast<double>(probs.empty() ? 0 : probs[0].size());
  std::ostringstream line;
  line << label << ":";
  for (const auto& [k, v] : m) line << " " << k << " " << (k == "rows" ? std::to_string(static_cast<int64_t>(v)) : Num(v));
  LogLine(line.str());
  return m;
}

EpochReport Trainer::Impl::TrainEpoch(int epoch, double* step_seconds) {
  const config::Trainer& t = job.trainer();
  data::PipelineOptions opts = sources.train.options;
  opts.batch_size = t.batch_size();
  opts.shuffle_buffer = job.data().shuffle_buffer();
  opts.seed = t.seed() + 7919ULL * epoch;
  data::BatchPipeline pipeline(schema, sources.train.files, opts);
  Prefetcher prefetch(schema, &pipeline, ps.get(), t.prefetch_depth(), /*read_only=*/false);
  // ASYNC: pushes are applied behind the steps, and prefetched rows are not refreshed.
  std::unique_ptr<AsyncPusher> pusher;
  if (job.ps().consistency() == config::Ps::ASYNC)
    pusher = std::make_unique<AsyncPusher>(ps.get(), job.ps().max_inflight_pushes(),
                                           [&prefetch](std::unique_ptr<PreparedBatch> b) { prefetch.Recycle(std::move(b)); });

  int64_t expected = sources.approx_train_rows;
  if (t.max_steps_per_epoch() > 0) expected = std::min<int64_t>(expected > 0 ? expected : INT64_MAX, t.max_steps_per_epoch() * t.batch_size());
  Progress progress(progress_mode, "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(t.epochs()), expected, t.log_every());

  EpochReport rep;
  rep.epoch = epoch + 1;
  double loss_sum = 0;
  int64_t step = 0;
  const auto start = Clock::now();
  model->train();
  while (t.max_steps_per_epoch() == 0 || step < t.max_steps_per_epoch()) {
    const auto wait_start = Clock::now();
    auto pb = prefetch.Next();
    if (!pb) break;
    const auto step_start = Clock::now();
    auto lap = step_start;
    auto phase = [&](const char* name) {
      const auto now = Clock::now();
      rep.phase_seconds[name] += Seconds(lap, now);
      lap = now;
    };
    rep.phase_seconds["wait"] += Seconds(wait_start, step_start);
    double loss_value;
    int64_t batch_rows = 0;
    {
      AssembledBatch a = Assemble(schema, *pb, /*requires_grad=*/true);
      phase("assemble");
      torch::Tensor loss = model->Loss(model->forward(a.input), a.labels);
      phase("forward");
      optimizer->zero_grad();
      loss.backward();
      phase("backward");
      if (pusher) {
        std::vector<torch::Tensor> grads;
        for (const torch::Tensor& r : a.rows) grads.push_back(r.grad());
        batch_rows = pb->batch.rows;
        pusher->Submit(std::move(pb), std::move(grads));
      } else {
        for (size_t tb = 0; tb < a.rows.size(); ++tb) {
          const torch::Tensor& g = a.rows[tb].grad();
          const int64_t n = static_cast<int64_t>(pb->tables[tb].ids.size());
          if (!g.defined() || n == 0) continue;
          torch::Tensor gc = g.contiguous();
          ps->Push(static_cast<int>(tb), pb->tables[tb].ids.data(), n, gc.data_ptr<float>());
          prefetch.NotePush(static_cast<int>(tb), pb->tables[tb].ids.data(), n);
        }
      }
      phase("push");
      optimizer->step();
      loss_value = loss.item<double>();
      phase("optimizer");
    }
    *step_seconds += Seconds(step_start, Clock::now());
    if (pb) batch_rows = pb->batch.rows;
    rep.train_samples += batch_rows;
    loss_sum += loss_value * batch_rows;
    ++step;
    progress.Update(step, rep.train_samples, loss_value);
    if (pb) prefetch.Recycle(std::move(pb));
  }
  if (pusher) pusher->Drain();  // evaluation and the next epoch see every push
  rep.seconds = Seconds(start, Clock::now());
  rep.steps = step;
  // Next() includes re-pulling rows pushed since they were prefetched: report that apart.
  rep.phase_seconds["refresh"] = prefetch.refresh_seconds();
  rep.phase_seconds["wait"] -= prefetch.refresh_seconds();
  rep.bad_lines = pipeline.bad_lines();
  rep.train_loss = rep.train_samples ? loss_sum / rep.train_samples : NAN;
  std::ostringstream s;
  s << "epoch " << epoch + 1 << ": " << rep.train_samples << " samples in " << Num(rep.seconds) << " s ("
    << static_cast<int64_t>(rep.train_samples / std::max(1e-9, rep.seconds)) << " samples/s), train loss " << Num(rep.train_loss);
  if (rep.bad_lines > 0) s << ", " << rep.bad_lines << " malformed lines skipped";
  progress.Finish(s.str());
  return rep;
}

TrainReport Trainer::Run() {
  Impl& m = *impl_;
  const config::Trainer& t = m.job.trainer();
  at::set_num_threads(t.num_threads() > 0 ? t.num_threads() : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  torch::manual_seed(t.seed());
  fs::create_directories(m.output_dir);
  m.progress_mode = static_cast<Progress::Mode>(t.progress());

  m.schema = data::BuildSchema(m.job);
  m.sources = ResolveDataSources(m.job, m.output_dir);
  m.ps = MakeEmbeddedPs(m.job, m.schema, m.output_dir, /*fresh=*/true);
  // Early stopping rolls the whole model back to its best epoch: dense weights from a snapshot,
  // PS rows from a checkpoint of the shards (RocksDB-backed embedded shards only).
  const std::string ps_dir = EmbeddedPsDir(m.job, m.output_dir);
  const std::string best_ps = (fs::path(m.output_dir) / "ps-best").string();
  const bool can_rollback = !ps_dir.empty() && m.sources.validation.present();
  bool best_is_checkpointed = false;
  fs::remove_all(best_ps);
  m.model = models::CreateModel(m.job.model(), m.schema);
  m.optimizer = MakeOptimizer(t.optimizer(), m.model->parameters());

  TrainReport report;
  double best_auc = -1, step_seconds = 0, train_seconds = 0;
  std::vector<torch::Tensor> best;
  int since_best = 0;
  for (int e = 0; e < t.epochs(); ++e) {
    const double lr = ScheduledLr(t, e);
    for (auto& g : m.optimizer->param_groups()) g.options().set_lr(lr);
    EpochReport ep = m.TrainEpoch(e, &step_seconds);
    train_seconds += ep.seconds;
    report.train_samples += ep.train_samples;
    if (m.sources.validation.present()) {
      ep.validation = m.Evaluate(m.sources.validation, "validation (epoch " + std::to_string(e + 1) + ")");
      const std::string key = m.model->num_tasks() == 1 ? "auc" : "auc_" + m.schema.label_columns[0];
      double auc = ep.validation.count(key) ? ep.validation[key] : NAN;
      if (std::isfinite(auc) && auc > best_auc) {
        best_auc = auc;
        report.best_epoch = e + 1;
        report.validation = ep.validation;
        best = Snapshot(*m.model);
        since_best = 0;
        if (can_rollback) {
          best_is_checkpointed = false;
          if (e + 1 < t.epochs()) {  // a later epoch may be worse: keep these rows
            fs::remove_all(best_ps);
            m.ps->Checkpoint(best_ps);
            best_is_checkpointed = true;
          }
        } else if (m.sources.test.present()) {
          // The rows keep training and cannot be rolled back: test the kept model now.
          report.test = m.Evaluate(m.sources.test, "test (epoch " + std::to_string(e + 1) + ")");
        }
      } else if (t.early_stopping_patience() > 0 && ++since_best >= t.early_stopping_patience()) {
        report.epochs.push_back(ep);
        LogLine("early stopping: no better validation AUC for " + std::to_string(since_best) + " epoch(s); keeping epoch " +
                std::to_string(report.best_epoch));
        break;
      }
    }
    report.epochs.push_back(ep);
  }
  if (!best.empty()) Restore(*m.model, best);
  const bool last_is_best = !report.epochs.empty() && report.best_epoch == report.epochs.back().epoch;
  if (can_rollback && best_is_checkpointed && !last_is_best) {
    LogLine("restoring the parameter-server rows of epoch " + std::to_string(report.best_epoch));
    m.ps.reset();  // closes the shards
    ps::RestoreInProcessCheckpoint(best_ps, ps_dir);
    m.ps = MakeEmbeddedPs(m.job, m.schema, m.output_dir, /*fresh=*/false);
    // The restored model must score exactly what its epoch scored.
    report.validation = m.Evaluate(m.sources.validation, "validation (restored epoch " + std::to_string(report.best_epoch) + ")");
  }
  fs::remove_all(best_ps);
  if (report.best_epoch == 0 && !report.epochs.empty()) {
    report.best_epoch = report.epochs.back().epoch;
    report.validation = report.epochs.back().validation;
  }
  if (m.sources.test.present() && (can_rollback || !m.sources.validation.present()))
    report.test = m.Evaluate(m.sources.test, "test");

  report.train_samples_per_sec = train_seconds > 0 ? report.train_samples / train_seconds : 0;
  report.step_samples_per_sec = step_seconds > 0 ? report.train_samples / step_seconds : 0;
  report.ps_rows = m.ps->num_rows();
  for (const ps::ShardStats& st : m.ps->Stats()) {
    report.ps_rows_cached += st.rows_cached;
    report.ps_cache_hits += st.cache_hits;
    report.ps_cache_misses += st.cache_misses;
    report.ps_evictions += st.evictions;
    report.ps_rocksdb_bytes += st.rocksdb_bytes;
  }
  if (report.ps_cache_hits + report.ps_cache_misses > 0) {
    std::ostringstream s;
    s << "ps: " << report.ps_rows << " rows (" << report.ps_rows_cached << " in memory), cache hit rate "
      << Num(static_cast<double>(report.ps_cache_hits) / (report.ps_cache_hits + report.ps_cache_misses)) << ", "
      << report.ps_evictions << " evictions, " << report.ps_rocksdb_bytes / (1 << 20) << " MiB in RocksDB";
    LogLine(s.str());
  }

  torch::serialize::OutputArchive archive;
  m.model->save(archive);
  archive.save_to((fs::path(m.output_dir) / "dense.pt").string());
  const std::string json = MetricsJson(m.job, report);
  const std::string tmp = (fs::path(m.output_dir) / "metrics.json.tmp").string();
  {
    std::ofstream out(tmp);
    out << json;
    if (!out) throw UserError("cannot write " + tmp);
  }
  fs::rename(tmp, fs::path(m.output_dir) / "metrics.json");
  return report;
}

std::string MetricsJson(const config::Job& job, const TrainReport& r) {
  std::ostringstream s;
  s << "{\n  \"name\": \"" << job.name() << "\",\n";
  s << "  \"validation\": " << MetricsObject(r.validation) << ",\n";
  s << "  \"test\": " << MetricsObject(r.test) << ",\n";
  s << "  \"best_epoch\": " << r.best_epoch << ",\n";
  s << "  \"epochs\": [";
  for (size_t i = 0; i < r.epochs.size(); ++i) {
    const EpochReport& e = r.epochs[i];
    s << (i ? ",\n    " : "\n    ") << "{\"epoch\": " << e.epoch << ", \"train_loss\": " << Num(e.train_loss)
      << ", \"train_samples\": " << e.train_samples << ", \"seconds\": " << Num(e.seconds)
      << ", \"bad_lines\": " << e.bad_lines << ", \"step_ms\": " << PhaseMs(e)
      << ", \"validation\": " << MetricsObject(e.validation) << "}";
  }
  s << "\n  ],\n";
  s << "  \"throughput\": {\"train_samples_per_sec\": " << Num(r.train_samples_per_sec)
    << ", \"step_samples_per_sec\": " << Num(r.step_samples_per_sec) << ", \"train_samples\": " << r.train_samples << "},\n";
  const int64_t lookups = r.ps_cache_hits + r.ps_cache_misses;
  s << "  \"ps\": {\"rows\": " << r.ps_rows << ", \"rows_cached\": " << r.ps_rows_cached
    << ", \"cache_hit_rate\": " << Num(lookups ? static_cast<double>(r.ps_cache_hits) / lookups : NAN)
    << ", \"evictions\": " << r.ps_evictions << ", \"rocksdb_bytes\": " << r.ps_rocksdb_bytes << "}\n}\n";
  return s.str();
}

}  // namespace shardrec::train

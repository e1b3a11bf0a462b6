#include "train/trainer.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "data/feature_schema.h"
#include "dist/grad_sync.h"
#include "models/model.h"
#include "ps/auth_token.h"
#include "ps/ps_client.h"
#include "ps/remote_ps_client.h"
#include "train/async_pusher.h"
#include "train/data_sources.h"
#include "train/dense_training.h"
#include "train/device.h"
#include "train/embedding_assembler.h"
#include "train/job_checkpoint.h"
#include "train/job_ps.h"
#include "train/metrics.h"
#include "train/prefetcher.h"
#include "train/progress.h"

namespace shardrec::train {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }





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

}  // namespace

// What a checkpoint must carry besides the weights: the position and the early-stopping state.
struct TrainState {
  int epoch = 0;          // the epoch in progress (0-based)
  int64_t step = 0;       // its steps already done
  int64_t global_step = 0;
  double best_auc = -1;
  int since_best = 0;
  double step_seconds = 0, train_seconds = 0;
  std::vector<torch::Tensor> best;  // early stopping's kept dense weights
  TrainReport report;
};

struct Trainer::Impl {
  config::Job job;
  std::string output_dir;
  TrainerOptions options;
  const WorkerGroup& workers() const { return options.workers; }
  data::FeatureSchema schema;
  DataSources sources;
  std::unique_ptr<ps::PsClient> ps;
  std::shared_ptr<models::Model> model;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::unique_ptr<dist::GradSync> grad_sync;
  torch::Device device = torch::kCPU;  // of the dense part
  Progress::Mode progress_mode = Progress::Mode::kAuto;
  TrainState state;
  std::string checkpoint_root;  // empty: checkpoints off

  void Log(const std::string& line) const {
    if (workers().chief()) LogLine(line);
  }
  MetricSet Evaluate(const DataPart& part, const std::string& label);
  EpochReport TrainEpoch(int epoch, int64_t first_step);
  // Rank 0's BatchNorm statistics on every worker (each worker's drift from its own batches), so
  // that evaluation and saved weights are one model's.
  void AlignBuffers();
  void SaveCheckpoint();
  void LoadCheckpoint(const std::string& folder);
  std::vector<std::string> TableNames() const;
};

Trainer::Trainer(config::Job job, std::string output_dir, TrainerOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->job = std::move(job);
  impl_->output_dir = std::move(output_dir);
  impl_->options = std::move(options);
}

Trainer::~Trainer() = default;

MetricSet Trainer::Impl::Evaluate(const DataPart& part, const std::string& label) {
  const config::Trainer& t = job.trainer();
  data::PipelineOptions opts = part.options;
  opts.batch_size = t.eval_batch_size();
  opts.shuffle_buffer = 0;
  opts.split.worker_index = workers().rank;
  opts.split.num_workers = workers().size;
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
        AssembledBatch a = Assemble(schema, *pb, /*requires_grad=*/false, device);
        torch::Tensor p = model->Predict(model->forward(a.input)).reshape({a.labels.size(0), tasks}).to(torch::kCPU).contiguous();
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
  // Metrics over the union of the workers' shards (an AUC of all rows, not a mean of AUCs); every
  // worker computes the same numbers, so every worker takes the same early-stopping decision.
  for (int k = 0; k < tasks; ++k) {
    workers().AllgatherVector(&probs[k]);
    workers().AllgatherVector(&labels[k]);
  }
  workers().AllgatherVector(&groups);

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
  Log(line.str());
  return m;
}

EpochReport Trainer::Impl::TrainEpoch(int epoch, int64_t first_step) {
  const config::Trainer& t = job.trainer();
  const WorkerGroup& w = workers();
  data::PipelineOptions opts = sources.train.options;
  opts.batch_size = t.batch_size();
  opts.shuffle_buffer = job.data().shuffle_buffer();
  opts.seed = t.seed() + 7919ULL * epoch;
  opts.split.worker_index = w.rank;
  opts.split.num_workers = w.size;
  data::BatchPipeline pipeline(schema, sources.train.files, opts);
  // A resumed epoch: the batches its checkpoint had trained are read again (same seed, same
  // order) and dropped, without pulling their rows.
  if (first_step > 0) {
    data::Batch skipped;
    for (int64_t k = 0; k < first_step && pipeline.Next(&skipped); ++k) {
    }
  }
  const bool async = job.ps().consistency() == config::Ps::ASYNC;
  // Sync mode with several workers: a step's rows must include every worker's pushes of the step
  // before, so rows are pulled after the step barrier, not ahead.
  const bool strict_sync = w.distributed() && !async;
  Prefetcher prefetch(schema, &pipeline, ps.get(), t.prefetch_depth(), /*read_only=*/false, /*pull_ahead=*/!strict_sync);
  // ASYNC: pushes are applied behind the steps, and prefetched rows are not refreshed.
  std::unique_ptr<AsyncPusher> pusher;
  if (async)
    pusher = std::make_unique<AsyncPusher>(ps.get(), job.ps().max_inflight_pushes(),
                                           [&prefetch](std::unique_ptr<PreparedBatch> b) { prefetch.Recycle(std::move(b)); });
  // Each worker's loss is the mean over its own rows; the global batch's mean gradient is the
  // mean over workers, which GradSync takes for the dense part and this factor for the rows.
  const double sparse_scale = 1.0 / w.size;

  int64_t expected = sources.approx_train_rows;
  if (t.max_steps_per_epoch() > 0) expected = std::min<int64_t>(expected > 0 ? expected : INT64_MAX, t.max_steps_per_epoch() * t.batch_size());
  if (expected > 0) expected /= w.size;
  Progress progress(w.chief() ? progress_mode : Progress::Mode::kQuiet,
                    "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(t.epochs()), expected, t.log_every());

  EpochReport rep;
  rep.epoch = epoch + 1;
  double loss_sum = 0;
  int64_t step = first_step;
  const bool checkpoint_steps = !checkpoint_root.empty() && t.checkpoint_every_steps() > 0;
  const auto start = Clock::now();
  model->train();
  while (t.max_steps_per_epoch() == 0 || step < t.max_steps_per_epoch()) {
    const auto wait_start = Clock::now();
    auto pb = prefetch.Next();
    if (!w.All(pb != nullptr)) {  // a worker whose shard ran out ends the epoch for all
      if (pb) prefetch.Recycle(std::move(pb));
      break;
    }
    const auto step_start = Clock::now();
    auto lap = step_start;
    auto phase = [&](const char* name) {
      const auto now = Clock::now();
      rep.phase_seconds[name] += Seconds(lap, now);
      lap = now;
    };
    rep.phase_seconds["wait"] += Seconds(wait_start, step_start);
    double loss_value;
    const int64_t batch_rows = pb->batch.rows;
    {
      AssembledBatch a = Assemble(schema, *pb, /*requires_grad=*/true, device);
      phase("assemble");
      torch::Tensor loss = model->Loss(model->forward(a.input), a.labels);
      phase("forward");
      optimizer->zero_grad();
      loss.backward();
      phase("backward");
      if (grad_sync) {
        grad_sync->Synchronize();
        phase("sync");
      }
      if (pusher) {
        std::vector<torch::Tensor> grads;
        for (const torch::Tensor& r : a.rows) {
          torch::Tensor g = r.grad();
          grads.push_back(g.defined() && w.distributed() ? g.mul(sparse_scale) : g);
        }
        pusher->Submit(std::move(pb), std::move(grads));
      } else {
        for (size_t tb = 0; tb < a.rows.size(); ++tb) {
          const torch::Tensor& g = a.rows[tb].grad();
          const int64_t n = static_cast<int64_t>(pb->tables[tb].ids.size());
          if (!g.defined() || n == 0) continue;
          torch::Tensor gc = g.to(torch::kCPU).contiguous();
          if (w.distributed()) gc.mul_(sparse_scale);
          ps->Push(static_cast<int>(tb), pb->tables[tb].ids.data(), n, gc.data_ptr<float>());
          prefetch.NotePush(static_cast<int>(tb), pb->tables[tb].ids.data(), n);
        }
        if (strict_sync) w.Barrier();  // every worker's pushes are applied before anyone pulls again
      }
      phase("push");
      optimizer->step();
      loss_value = loss.item<double>();
      phase("optimizer");
    }
    state.step_seconds += Seconds(step_start, Clock::now());
    rep.train_samples += batch_rows;
    loss_sum += loss_value * batch_rows;
    ++step;
    ++state.global_step;
    progress.Update(step - first_step, rep.train_samples, loss_value);
    if (pb) prefetch.Recycle(std::move(pb));
    if (checkpoint_steps && state.global_step % t.checkpoint_every_steps() == 0) {
      if (pusher) pusher->Drain();
      state.epoch = epoch;
      state.step = step;
      SaveCheckpoint();
    }
  }
  if (pusher) pusher->Drain();  // evaluation and the next epoch see every push
  rep.seconds = Seconds(start, Clock::now());
  rep.steps = step - first_step;
  // Next() includes re-pulling rows pushed since they were prefetched: report that apart.
  rep.phase_seconds["refresh"] = prefetch.refresh_seconds();
  rep.phase_seconds["wait"] -= prefetch.refresh_seconds();
  rep.bad_lines = static_cast<int64_t>(w.Sum(static_cast<double>(pipeline.bad_lines())));
  loss_sum = w.Sum(loss_sum);
  rep.train_samples = static_cast<int64_t>(w.Sum(static_cast<double>(rep.train_samples)));
  rep.train_loss = rep.train_samples ? loss_sum / rep.train_samples : NAN;
  std::ostringstream s;
  s << "epoch " << epoch + 1 << ": " << rep.train_samples << " samples in " << Num(rep.seconds) << " s ("
    << static_cast<int64_t>(rep.train_samples / std::max(1e-9, rep.seconds)) << " samples/s"
    << (w.distributed() ? " over " + std::to_string(w.size) + " workers" : std::string()) << "), train loss "
    << Num(rep.train_loss);
  if (first_step > 0) s << " (resumed at step " << first_step << ")";
  if (rep.bad_lines > 0) s << ", " << rep.bad_lines << " malformed lines skipped";
  progress.Finish(s.str());
  return rep;
}

void Trainer::Impl::AlignBuffers() {
  if (grad_sync && !model->buffers().empty()) grad_sync->BroadcastTensors(model->buffers());
}

std::vector<std::string> Trainer::Impl::TableNames() const {
  std::vector<std::string> names;
  for (const ps::TableSpec& t : schema.tables) names.push_back(t.name + ":" + std::to_string(t.dim));
  return names;
}

void Trainer::Impl::SaveCheckpoint() {
  const WorkerGroup& w = workers();
  AlignBuffers();
  w.Barrier();  // every worker's pushes are applied: the shards hold one consistent moment
  if (w.chief()) {
    const auto start = Clock::now();
    const std::string folder = CheckpointFolder(checkpoint_root, state.global_step);
    fs::remove_all(folder);
    fs::create_directories(folder);
    ps->Checkpoint((fs::path(folder) / "ps").string());
    {
      torch::serialize::OutputArchive a;
      model->save(a);
      a.save_to((fs::path(folder) / "dense.pt").string());
    }
    {
      torch::serialize::OutputArchive a;
      optimizer->save(a);
      a.save_to((fs::path(folder) / "optimizer.pt").string());
    }
    checkpoint::Manifest m;
    m.set_job_name(job.name());
    m.set_num_workers(w.size);
    m.set_num_shards(job.ps().addresses_size() > 0 ? job.ps().addresses_size() : job.ps().num_shards());
    for (const std::string& t : TableNames()) m.add_tables(t);
    m.set_epoch(state.epoch);
    m.set_step(state.step);
    m.set_global_step(state.global_step);
    m.set_dense("dense.pt");
    m.set_optimizer("optimizer.pt");
    m.set_ps("ps");
    if (!state.best.empty()) {
      torch::save(state.best, (fs::path(folder) / "best.pt").string());
      m.set_best_dense("best.pt");
    }
    m.set_best_auc(state.best_auc);
    m.set_best_epoch(state.report.best_epoch);
    m.set_since_best(state.since_best);
    for (const EpochReport& e : state.report.epochs) {
      checkpoint::EpochRecord* r = m.add_epochs();
      r->set_epoch(e.epoch);
      r->set_train_loss(e.train_loss);
      r->set_train_samples(e.train_samples);
      r->set_seconds(e.seconds);
      r->set_steps(e.steps);
      for (const auto& [k, v] : e.validation) (*r->mutable_validation())[k] = v;
    }
    m.set_step_seconds(state.step_seconds);
    m.set_train_seconds(state.train_seconds);
    m.set_train_samples(state.report.train_samples);
    const std::time_t now = std::time(nullptr);
    char when[32];
    std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    m.set_created(when);
    WriteManifest(folder, m);
    PruneCheckpoints(checkpoint_root, job.trainer().keep_checkpoints());
    LogLine("checkpoint " + folder + " (epoch " + std::to_string(state.epoch + 1) + ", step " + std::to_string(state.step) +
            ") in " + Num(Seconds(start, Clock::now())) + " s");
  }
  ++state.report.checkpoints_written;
  w.Barrier();  // nobody pushes into a shard while it is being copied
}

void Trainer::Impl::LoadCheckpoint(const std::string& folder) {
  const checkpoint::Manifest m = ReadManifest(folder);
  CheckSameShape(m, folder, workers().size,
                 job.ps().addresses_size() > 0 ? job.ps().addresses_size() : job.ps().num_shards(), TableNames());
  {
    torch::serialize::InputArchive a;
    a.load_from((fs::path(folder) / m.dense()).string());
    model->load(a);
  }
  {
    torch::serialize::InputArchive a;
    a.load_from((fs::path(folder) / m.optimizer()).string());
    optimizer->load(a);
  }
  if (m.has_best_dense()) torch::load(state.best, (fs::path(folder) / m.best_dense()).string());
  state.epoch = m.epoch();
  state.step = m.step();
  state.global_step = m.global_step();
  state.best_auc = m.best_auc();
  state.since_best = m.since_best();
  state.step_seconds = m.step_seconds();
  state.train_seconds = m.train_seconds();
  state.report.best_epoch = m.best_epoch();
  state.report.train_samples = m.train_samples();
  for (const checkpoint::EpochRecord& r : m.epochs()) {
    EpochReport e;
    e.epoch = r.epoch();
    e.train_loss = r.train_loss();
    e.train_samples = r.train_samples();
    e.seconds = r.seconds();
    e.steps = r.steps();
    for (const auto& [k, v] : r.validation()) e.validation[k] = v;
    if (e.epoch == m.best_epoch()) state.report.validation = e.validation;
    state.report.epochs.push_back(std::move(e));
  }
  state.report.resumed_from = folder;
  Log("resuming from " + folder + ": epoch " + std::to_string(state.epoch + 1) + ", step " + std::to_string(state.step) +
      " (global step " + std::to_string(state.global_step) + ")");
}

TrainReport Trainer::Run() {
  Impl& m = *impl_;
  const config::Trainer& t = m.job.trainer();
  const WorkerGroup& w = m.workers();
  at::set_num_threads(t.num_threads() > 0 ? t.num_threads() : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  torch::manual_seed(t.seed());
  if (w.chief()) fs::create_directories(m.output_dir);
  m.progress_mode = static_cast<Progress::Mode>(t.progress());
  if (w.distributed() && m.job.ps().addresses_size() == 0)
    throw UserError("dist: " + std::to_string(w.size) +
                    " workers need parameter servers they all reach (ps.addresses); start the job with `shardrec launch` "
                    "or under mpirun/srun with dist.num_ps, which start them");
  std::string resume_folder;
  if (!m.options.resume_from.empty()) resume_folder = FindCheckpoint(m.options.resume_from);

  m.schema = data::BuildSchema(m.job);
  // Generated data is written once, by the chief; the other workers then find and reuse it.
  if (w.chief()) m.sources = ResolveDataSources(m.job, m.output_dir);
  w.Barrier();
  if (!w.chief()) m.sources = ResolveDataSources(m.job, m.output_dir);
  const std::string ps_dir = EmbeddedPsDir(m.job, m.output_dir);
  if (!resume_folder.empty() && !ps_dir.empty()) {
    // Embedded shards come back from the checkpoint; remote ones were restored by their servers.
    const std::string restored = (fs::path(resume_folder) / "ps").string();
    fs::create_directories(ps_dir);
    ps::RestoreInProcessCheckpoint(restored, ps_dir);
  }
  m.ps = OpenJobPs(m.job, m.schema, m.output_dir, /*fresh=*/resume_folder.empty());
  // Early stopping rolls the whole model back to its best epoch: dense weights from a snapshot,
  // PS rows from a checkpoint of the shards (RocksDB-backed embedded shards only).
  const std::string best_ps = (fs::path(m.output_dir) / "ps-best").string();
  const bool can_rollback = !ps_dir.empty() && m.sources.validation.present();
  bool best_is_checkpointed = !resume_folder.empty() && fs::exists(best_ps);
  if (resume_folder.empty()) fs::remove_all(best_ps);
  m.device = ResolveDevice(t.device(), w.local_rank);
  m.model = models::CreateModel(m.job.model(), m.schema);
  m.model->to(m.device);
  m.optimizer = MakeOptimizer(t.optimizer(), m.model->parameters());
  if (w.distributed()) {
    dist::GradSyncOptions gso;
    gso.bucket_bytes = static_cast<size_t>(m.job.dist().bucket_mib() * (1 << 20));
    m.grad_sync = std::make_unique<dist::GradSync>(m.model->parameters(), w.comm, gso);
  }
  if (t.checkpoints() && !(m.job.ps().memory_only() && m.job.ps().addresses_size() == 0))
    m.checkpoint_root = t.has_checkpoint_dir() ? t.checkpoint_dir() : (fs::path(m.output_dir) / "checkpoints").string();
  if (!resume_folder.empty()) m.LoadCheckpoint(resume_folder);
  if (m.grad_sync) {  // one model on every worker, whatever each initialised or loaded
    m.grad_sync->BroadcastParameters(0);
    m.AlignBuffers();
  }
  torch::manual_seed(t.seed() + 1000003ULL * w.rank + static_cast<uint64_t>(m.state.global_step));  // dropout masks differ per worker

  TrainState& st = m.state;
  TrainReport& report = st.report;
  for (int e = st.epoch; e < t.epochs(); ++e) {
    const double lr = ScheduledLr(t, e);
    for (auto& g : m.optimizer->param_groups()) g.options().set_lr(lr);
    const int64_t first_step = e == st.epoch ? st.step : 0;
    EpochReport ep = m.TrainEpoch(e, first_step);
    st.train_seconds += ep.seconds;
    report.train_samples += ep.train_samples;
    bool stop = false;
    if (m.sources.validation.present()) {
      m.AlignBuffers();
      ep.validation = m.Evaluate(m.sources.validation, "validation (epoch " + std::to_string(e + 1) + ")");
      // The first classification task's AUC; when every task is a regression, the first task's
      // MSE as -MSE / (1 + MSE) (ordered like -MSE, and above the starting best of -1).
      int task = 0;
      while (task < m.model->num_tasks() && m.model->task_kind(task) != models::TaskKind::kClassification) ++task;
      const bool by_auc = task < m.model->num_tasks();
      const std::string key = std::string(by_auc ? "auc" : "mse") +
                              (m.model->num_tasks() == 1 ? "" : "_" + m.schema.label_columns[by_auc ? task : 0]);
      double auc = !ep.validation.count(key) ? NAN : by_auc ? ep.validation[key] : -ep.validation[key] / (1 + ep.validation[key]);
      if (std::isfinite(auc) && auc > st.best_auc) {
        st.best_auc = auc;
        report.best_epoch = e + 1;
        report.validation = ep.validation;
        st.best = Snapshot(*m.model);
        st.since_best = 0;
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
      } else if (t.early_stopping_patience() > 0 && ++st.since_best >= t.early_stopping_patience()) {
        m.Log("early stopping: no better validation AUC for " + std::to_string(st.since_best) + " epoch(s); keeping epoch " +
              std::to_string(report.best_epoch));
        stop = true;
      }
    }
    report.epochs.push_back(ep);
    if (stop) break;
    st.epoch = e + 1;
    st.step = 0;
    if (!m.checkpoint_root.empty() && e + 1 < t.epochs()) m.SaveCheckpoint();
  }
  if (!st.best.empty()) Restore(*m.model, st.best);
  const bool last_is_best = !report.epochs.empty() && report.best_epoch == report.epochs.back().epoch;
  if (can_rollback && best_is_checkpointed && !last_is_best) {
    m.Log("restoring the parameter-server rows of epoch " + std::to_string(report.best_epoch));
    m.ps.reset();  // closes the shards
    ps::RestoreInProcessCheckpoint(best_ps, ps_dir);
    m.ps = OpenJobPs(m.job, m.schema, m.output_dir, /*fresh=*/false);
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

  report.num_workers = w.size;
  report.train_samples_per_sec = st.train_seconds > 0 ? report.train_samples / st.train_seconds : 0;
  // Step time is per worker; the workers' steps run side by side.
  report.step_samples_per_sec = st.step_seconds > 0 ? report.train_samples / st.step_seconds : 0;
  if (!w.chief()) return report;  // the chief reports and writes the job's files
  report.ps_rows = m.ps->num_rows();
  for (const ps::ShardStats& s : m.ps->Stats()) {
    report.ps_rows_cached += s.rows_cached;
    report.ps_cache_hits += s.cache_hits;
    report.ps_cache_misses += s.cache_misses;
    report.ps_evictions += s.evictions;
    report.ps_rocksdb_bytes += s.rocksdb_bytes;
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
  s << "  \"workers\": " << r.num_workers << ",\n";
  if (!r.resumed_from.empty()) s << "  \"resumed_from\": \"" << r.resumed_from << "\",\n";
  s << "  \"throughput\": {\"train_samples_per_sec\": " << Num(r.train_samples_per_sec)
    << ", \"step_samples_per_sec\": " << Num(r.step_samples_per_sec) << ", \"train_samples\": " << r.train_samples << "},\n";
  const int64_t lookups = r.ps_cache_hits + r.ps_cache_misses;
  s << "  \"ps\": {\"rows\": " << r.ps_rows << ", \"rows_cached\": " << r.ps_rows_cached
    << ", \"cache_hit_rate\": " << Num(lookups ? static_cast<double>(r.ps_cache_hits) / lookups : NAN)
    << ", \"evictions\": " << r.ps_evictions << ", \"rocksdb_bytes\": " << r.ps_rocksdb_bytes << "}\n}\n";
  return s.str();
}

}  // namespace shardrec::train

// deepfm_bench: DeepFM training throughput of the ShardRec trainer against a dense baseline, at
// several vocabulary sizes, in one run. See bench/README.md for what is measured and how to read it.
//
//   (a) shardrec: config::LoadJob(configs/deepfm.pbtxt) with overrides, train::Trainer::Run(); the
//       PS pulls only the rows a batch touches and applies lazy row-wise Adam.
//   (b) dense: what Python libraries (Torch-RecHub) do. The same DeepFM dense model, but the 26
//       tables are torch::nn::Embedding(vocab, 16) modules, ids are label-encoded into [0, vocab)
//       in a preprocessing pass, and ONE torch::optim::Adam updates every parameter, every row of
//       every table included, at every step.
//
// Each (vocab, side) runs in a child process (this binary re-invoked with --only=...), so peak RSS
// and allocator state don't leak between sides. The parent generates the data once per vocab and
// prints the table.
#include <fcntl.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/process_tuning.h"
#include "config/config_loader.h"
#include "data/batch.h"
#include "data/feature_schema.h"
#include "data/pipeline.h"
#include "models/model.h"
#include "shardrec/config.pb.h"
#include "train/data_sources.h"
#include "train/trainer.h"

#ifndef SHARDREC_SOURCE_DIR
#define SHARDREC_SOURCE_DIR "."
#endif

namespace {

namespace fs = std::filesystem;
using namespace shardrec;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// CPU seconds (user + system) of all threads of this process so far: less sensitive than wall
// time to other work on a shared machine.
double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// ---------------------------------------------------------------------------------------------
// Options

struct Options {
  std::string config = std::string(SHARDREC_SOURCE_DIR) + "/configs/deepfm.pbtxt";
  std::vector<int64_t> vocabs = {1000, 1000000};
  int64_t batch = 2048;
  int steps = 100;
  int warmup = 10;
  // The dense side at big vocabularies updates 26 * vocab * 16 floats (+ Adam state) per step:
  // seconds per step at 1e6. It runs fewer steps there.
  int64_t big_vocab = 100000;
  int dense_big_steps = 8;
  int dense_big_warmup = 2;
  int64_t rows = 0;  // generated rows per vocab; 0 = just enough for the longest side
  int repeat = 1;     // runs of each side per vocab (interleaved); the table shows medians
  std::string out;
  std::string workdir;
  bool keep_workdir = false;
  // Child mode.
  std::string only;    // "shardrec" | "dense"
  std::string result;  // where the child writes its numbers
};

struct Plan {
  int warmup = 0;
  int steps = 0;
};

Plan PlanFor(const Options& o, int64_t vocab, const std::string& side) {
  if (side == "dense" && vocab >= o.big_vocab) return {o.dense_big_warmup, o.dense_big_steps};
  return {o.warmup, o.steps};
}

int64_t RowsFor(const Options& o, int64_t vocab) {
  if (o.rows > 0) return o.rows;
  int most = 0;
  for (const char* side : {"shardrec", "dense"}) {
    Plan p = PlanFor(o, vocab, side);
    most = std::max(most, p.warmup + p.steps);
  }
  // The generator puts 80% of the rows in train.csv; one spare batch of margin.
  return static_cast<int64_t>(std::ceil((most + 1) * o.batch / 0.8));
}

std::string DataDir(const Options& o, int64_t vocab) {
  return (fs::path(o.workdir) / ("data-" + std::to_string(vocab))).string();
}

// The benchmark job: the config file with the bench's overrides. Both sides read this job.
config::Job MakeJob(const Options& o, int64_t vocab, int64_t rows, int max_steps) {
  std::vector<std::string> sets = {
      "data.synthetic.vocab_size=" + std::to_string(vocab),
      "data.synthetic.rows=" + std::to_string(rows),
      "data.synthetic.dir=" + DataDir(o, vocab),
      "trainer.batch_size=" + std::to_string(o.batch),
      "trainer.epochs=1",
      "trainer.max_steps_per_epoch=" + std::to_string(max_steps),
      "trainer.progress=QUIET",
  };
  config::Job job = config::LoadJob(o.config, sets);
  if (job.model().kind_case() != config::Model::kDeepfm)
    throw std::runtime_error(o.config + ": the bench expects a deepfm model");
  return job;
}

// ---------------------------------------------------------------------------------------------
// Memory (/proc/self/status is per process; each side runs in its own child)

int64_t StatusKb(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::atoll(line.c_str() + key.size() + 1);
  }
  return -1;
}

// Resets VmHWM to the current RSS (Linux >= 4.0). False where not permitted.
bool ResetPeakRss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

struct MemProbe {
  int64_t base_kb = 0;
  bool reset = false;
  void Start() {
    reset = ResetPeakRss();
    base_kb = StatusKb("VmRSS");
  }
  // (peak RSS, peak growth over Start()) in MB.
  std::pair<double, double> Peak() const {
    const int64_t hwm = StatusKb("VmHWM");
    return {hwm / 1024.0, (hwm - base_kb) / 1024.0};
  }
};

// Child results: "key value" lines.
using Result = std::map<std::string, double>;

void WriteResult(const std::string& path, const Result& r) {
  std::ofstream out(path);
  out.precision(10);
  for (const auto& [k, v] : r) out << k << " " << v << "\n";
  if (!out) throw std::runtime_error("cannot write " + path);
}

Result ReadResult(const std::string& path) {
  Result r;
  std::ifstream in(path);
  std::string k, v;
  while (in >> k >> v) r[k] = std::strtod(v.c_str(), nullptr);  // strtod reads "nan" too
  return r;
}

// ---------------------------------------------------------------------------------------------
// (a) ShardRec: the real trainer. The report only has whole-run rates, so "N steps after W warm-up
// steps" is measured by difference: run W+N steps and W steps (same seed, same data order, so the
// first W steps are the same work) and take the difference of the step time, of the epoch time
// and of the CPU time. See RunShardRec for the two W-step runs.

train::TrainReport RunTrainer(const Options& o, int64_t vocab, int64_t rows, int steps, const std::string& name,
                              double* cpu_seconds = nullptr) {
  config::Job job = MakeJob(o, vocab, rows, steps);
  train::Trainer trainer(job, (fs::path(o.workdir) / ("shardrec-" + std::to_string(vocab) + "-" + name)).string());
  const double cpu0 = CpuSeconds();
  train::TrainReport r = trainer.Run();
  if (cpu_seconds) *cpu_seconds = CpuSeconds() - cpu0;
  return r;
}

double EpochSeconds(const train::TrainReport& r) {
  double s = 0;
  for (const auto& e : r.epochs) s += e.seconds;
  return s;
}

double StepSeconds(const train::TrainReport& r) {
  return r.step_samples_per_sec > 0 ? r.train_samples / r.step_samples_per_sec : 0;
}

Result RunShardRec(const Options& o, int64_t vocab) {
  const Plan p = PlanFor(o, vocab, "shardrec");
  const int64_t rows = RowsFor(o, vocab);
  MemProbe mem;
  mem.Start();
  Result r;
  train::TrainReport full;
  double samples = 0, step_s = 0, e2e_s = 0, cpu_s = 0;
  if (p.warmup > 0) {
    // Two W-step runs (the first also warms the process up); each figure of the head takes the
    // smaller of the two, so a burst of other load during one of them is not subtracted (this
    // errs towards a lower ShardRec rate).
    double cpu_a = 0, cpu_b = 0, full_cpu = 0;
    train::TrainReport a = RunTrainer(o, vocab, rows, p.warmup, "warmup", &cpu_a);
    train::TrainReport b = RunTrainer(o, vocab, rows, p.warmup, "w", &cpu_b);
    full = RunTrainer(o, vocab, rows, p.warmup + p.steps, "wn", &full_cpu);
    samples = static_cast<double>(full.train_samples - b.train_samples);
    step_s = StepSeconds(full) - std::min(StepSeconds(a), StepSeconds(b));
    e2e_s = EpochSeconds(full) - std::min(EpochSeconds(a), EpochSeconds(b));
    // Whole Run()s: set-up, evaluation and checkpointing are the same work in each and cancel.
    cpu_s = full_cpu - std::min(cpu_a, cpu_b);
    r["head_step_seconds"] = std::min(StepSeconds(a), StepSeconds(b));
    r["head_e2e_seconds"] = std::min(EpochSeconds(a), EpochSeconds(b));
    r["head_cpu_seconds"] = std::min(cpu_a, cpu_b);
    r["full_step_seconds"] = StepSeconds(full);
    r["full_e2e_seconds"] = EpochSeconds(full);
    r["full_cpu_seconds"] = full_cpu;
  } else {
    full = RunTrainer(o, vocab, rows, p.steps, "wn", &cpu_s);  // includes set-up and evaluation
    samples = static_cast<double>(full.train_samples);
    step_s = StepSeconds(full);
    e2e_s = EpochSeconds(full);
  }
  if (!(step_s > 0) || !(e2e_s > 0))
    std::cerr << "warning: the W+N-step run took no longer than the W-step run (machine too noisy, or too few "
                 "--steps): no rate\n";
  const int64_t expected = static_cast<int64_t>(p.warmup + p.steps) * o.batch;
  if (full.train_samples < expected)
    std::cerr << "warning: shardrec trained " << full.train_samples << " samples, expected " << expected
              << " (too few generated rows?)\n";
  const auto [peak, growth] = mem.Peak();
  r["samples"] = samples;
  r["step_seconds"] = step_s;
  r["e2e_seconds"] = e2e_s;
  r["step_samples_per_sec"] = step_s > 0 ? samples / step_s : NAN;
  r["e2e_samples_per_sec"] = e2e_s > 0 ? samples / e2e_s : NAN;
  r["cpu_seconds"] = cpu_s;
  r["cpu_samples_per_sec"] = cpu_s > 0 ? samples / cpu_s : NAN;
  r["run_step_samples_per_sec"] = full.step_samples_per_sec;  // whole W+N run, as the report has it
  r["run_train_samples_per_sec"] = full.train_samples_per_sec;
  r["ps_rows"] = static_cast<double>(full.ps_rows);
  r["warmup"] = p.warmup;
  r["steps"] = p.steps;
  r["peak_rss_mb"] = peak;
  r["rss_growth_mb"] = growth;
  r["peak_reset"] = mem.reset;
  return r;
}

// ---------------------------------------------------------------------------------------------
// (b) Dense baseline.

using IdMap = std::unordered_map<int64_t, int64_t>;

struct DenseBatch {
  int64_t rows = 0;
  torch::Tensor labels;            // [B, num_labels]
  torch::Tensor dense;             // [B, num_dense]
  std::vector<torch::Tensor> idx;  // per sparse column: [B] int64 in [0, table rows)
};

// Reads the pipeline on a background thread and label-encodes the ids, `depth` batches ahead:
// the part of a Python DataLoader over pre-encoded arrays. Kept off the step like ShardRec's
// prefetcher (which dedups and pulls rows on its own thread).
class DenseLoader {
 public:
  DenseLoader(const data::FeatureSchema& schema, data::BatchPipeline* pipeline, std::vector<const IdMap*> column_maps,
              size_t depth)
      : schema_(schema), pipeline_(pipeline), maps_(std::move(column_maps)), depth_(std::max<size_t>(1, depth)) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~DenseLoader() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    space_cv_.notify_all();
    thread_.join();
  }

  std::unique_ptr<DenseBatch> Next() {
    std::unique_lock<std::mutex> lock(mu_);
    ready_cv_.wait(lock, [&] { return !ready_.empty() || done_ || error_; });
    if (!ready_.empty()) {
      auto b = std::move(ready_.front());
      ready_.pop_front();
      space_cv_.notify_one();
      return b;
    }
    if (error_) std::rethrow_exception(error_);
    return nullptr;
  }

 private:
  void Loop() {
    try {
      data::Batch b;
      while (true) {
        {
          std::unique_lock<std::mutex> lock(mu_);
          space_cv_.wait(lock, [&] { return stop_ || ready_.size() < depth_; });
          if (stop_) return;
        }
        if (!pipeline_->Next(&b)) break;
        auto db = std::make_unique<DenseBatch>();
        const int64_t B = b.rows;
        db->rows = B;
        db->labels = torch::from_blob(b.labels.data(), {B, static_cast<int64_t>(b.num_labels)}, torch::kFloat32).clone();
        db->dense = torch::from_blob(b.dense.data(), {B, static_cast<int64_t>(schema_.num_dense)}, torch::kFloat32).clone();
        db->idx.resize(b.sparse.size());
        for (size_t c = 0; c < b.sparse.size(); ++c) {
          const data::SparseColumn& col = b.sparse[c];
          if (static_cast<int64_t>(col.ids.size()) != B) throw std::runtime_error("dense baseline: expected one id per row");
          torch::Tensor t = torch::empty({B}, torch::kInt64);
          int64_t* out = t.data_ptr<int64_t>();
          const IdMap& m = *maps_[c];
          for (int64_t r = 0; r < B; ++r) {
            auto it = m.find(col.ids[r]);
            if (it == m.end()) throw std::runtime_error("dense baseline: id missing from the vocabulary");
            out[r] = it->second;
          }
          db->idx[c] = t;
        }
        {
          std::lock_guard<std::mutex> lock(mu_);
          ready_.push_back(std::move(db));
        }
        ready_cv_.notify_one();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    ready_cv_.notify_all();
  }

  const data::FeatureSchema& schema_;
  data::BatchPipeline* pipeline_;
  const std::vector<const IdMap*> maps_;
  const size_t depth_;
  std::mutex mu_;
  std::condition_variable ready_cv_, space_cv_;
  std::deque<std::unique_ptr<DenseBatch>> ready_;
  bool done_ = false, stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

Result RunDense(const Options& o, int64_t vocab) {
  const Plan p = PlanFor(o, vocab, "dense");
  const int64_t rows = RowsFor(o, vocab);
  config::Job job = MakeJob(o, vocab, rows, p.warmup + p.steps);
  const config::Trainer& t = job.trainer();
  at::set_num_threads(t.num_threads() > 0 ? t.num_threads() : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  torch::manual_seed(t.seed());

  const data::FeatureSchema schema = data::BuildSchema(job);
  const train::DataSources sources = train::ResolveDataSources(job, o.workdir);  // generated by the parent

  // Preprocessing (untimed): one pass over the training file builds a vocabulary per table, like
  // sklearn's LabelEncoder over the DataFrame column.
  const auto pre_start = Clock::now();
  std::vector<IdMap> maps(schema.tables.size());
  std::vector<IdMap*> column_maps(static_cast<size_t>(schema.num_sparse), nullptr);
  for (const data::FeatureSpec& f : schema.features) {
    if (f.kind == data::FeatureKind::kDense) continue;
    if (f.kind != data::FeatureKind::kSparse) throw std::runtime_error("dense baseline: sparse features only");
    column_maps[static_cast<size_t>(f.sparse_index)] = &maps[static_cast<size_t>(f.table)];
  }
  {
    data::PipelineOptions po = sources.train.options;
    po.batch_size = 65536;
    po.shuffle_buffer = 0;
    data::BatchPipeline pre(schema, sources.train.files, po);
    data::Batch b;
    while (pre.Next(&b)) {
      for (size_t c = 0; c < b.sparse.size(); ++c) {
        IdMap& m = *column_maps[c];
        for (int64_t id : b.sparse[c].ids) m.emplace(id, static_cast<int64_t>(m.size()));
      }
    }
  }
  const double pre_seconds = Seconds(pre_start, Clock::now());

  MemProbe mem;
  mem.Start();

  // Model: the same dense DeepFM; tables are full nn::Embedding modules, N(0, 1e-4) like the
  // reference's RandomNormal init, sized to the field's vocabulary.
  std::shared_ptr<models::Model> model = models::CreateModel(job.model(), schema);
  std::vector<torch::nn::Embedding> tables;
  int64_t table_rows_max = 0, distinct_max = 0;
  for (size_t i = 0; i < schema.tables.size(); ++i) {
    const int64_t distinct = static_cast<int64_t>(maps[i].size());
    const int64_t n = std::max<int64_t>(vocab, distinct);
    table_rows_max = std::max(table_rows_max, n);
    distinct_max = std::max(distinct_max, distinct);
    torch::nn::Embedding e(torch::nn::EmbeddingOptions(n, schema.tables[i].dim));
    {
      torch::NoGradGuard ng;
      e->weight.normal_(0.0, 1e-4);
    }
    tables.push_back(e);
  }
  std::vector<torch::Tensor> params = model->parameters();
  for (auto& e : tables) params.push_back(e->weight);
  const config::DenseOptimizer& oc = t.optimizer();
  torch::optim::Adam optimizer(params, torch::optim::AdamOptions(oc.lr())
                                           .betas({oc.beta1(), oc.beta2()})
                                           .eps(oc.eps())
                                           .weight_decay(oc.weight_decay()));

  // Training data read exactly as Trainer::TrainEpoch reads epoch 1.
  data::PipelineOptions opts = sources.train.options;
  opts.batch_size = t.batch_size();
  opts.shuffle_buffer = job.data().shuffle_buffer();
  opts.seed = t.seed();
  data::BatchPipeline pipeline(schema, sources.train.files, opts);
  DenseLoader loader(schema, &pipeline, std::vector<const IdMap*>(column_maps.begin(), column_maps.end()), static_cast<size_t>(std::max(1, t.prefetch_depth())));

  const int tasks = model->num_tasks();
  model->train();
  int64_t samples = 0, steps_done = 0;
  double step_s = 0;
  Clock::time_point timed_start = Clock::now();
  double cpu_start = CpuSeconds();
  for (int i = 0; i < p.warmup + p.steps; ++i) {
    if (i == p.warmup) {
      timed_start = Clock::now();
      cpu_start = CpuSeconds();
    }
    std::unique_ptr<DenseBatch> b = loader.Next();
    if (!b) break;
    const auto step_start = Clock::now();
    models::ModelInput in;
    in.schema = &schema;
    in.dense = b->dense;
    in.features.resize(schema.features.size());
    for (size_t f = 0; f < schema.features.size(); ++f) {
      const data::FeatureSpec& spec = schema.features[f];
      if (spec.kind == data::FeatureKind::kDense) continue;
      in.features[f].emb = tables[static_cast<size_t>(spec.table)]->forward(b->idx[static_cast<size_t>(spec.sparse_index)]);
    }
    torch::Tensor logits = model->forward(in).reshape({b->rows, tasks});
    torch::Tensor loss = torch::binary_cross_entropy_with_logits(logits, b->labels.narrow(1, 0, tasks));
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    const double loss_value = loss.item<double>();
    (void)loss_value;
    if (i >= p.warmup) {
      step_s += Seconds(step_start, Clock::now());
      samples += b->rows;
      ++steps_done;
    }
  }
  const double e2e_s = Seconds(timed_start, Clock::now());
  const double cpu_s = CpuSeconds() - cpu_start;
  if (steps_done < p.steps)
    std::cerr << "warning: dense ran " << steps_done << " timed steps, expected " << p.steps << " (too few generated rows?)\n";

  const auto [peak, growth] = mem.Peak();
  Result r;
  r["samples"] = static_cast<double>(samples);
  r["step_seconds"] = step_s;
  r["e2e_seconds"] = e2e_s;
  r["step_samples_per_sec"] = step_s > 0 ? samples / step_s : NAN;
  r["e2e_samples_per_sec"] = e2e_s > 0 ? samples / e2e_s : NAN;
  r["cpu_seconds"] = cpu_s;
  r["cpu_samples_per_sec"] = cpu_s > 0 ? samples / cpu_s : NAN;
  r["warmup"] = p.warmup;
  r["steps"] = p.steps;
  r["table_rows"] = static_cast<double>(table_rows_max);
  r["distinct_ids_max"] = static_cast<double>(distinct_max);
  r["preprocess_seconds"] = pre_seconds;
  r["peak_rss_mb"] = peak;
  r["rss_growth_mb"] = growth;
  r["peak_reset"] = mem.reset;
  return r;
}

// ---------------------------------------------------------------------------------------------
// Parent: data generation, children, report.

std::string Tail(const std::string& path, size_t max_chars) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > max_chars ? s.substr(s.size() - max_chars) : s;
}

// Re-invokes this binary for one (vocab, side); its stdout and stderr go to `log`.
Result RunChild(const Options& o, const char* self, int64_t vocab, const std::string& side, int run) {
  const std::string base =
      (fs::path(o.workdir) / (side + "-" + std::to_string(vocab) + (o.repeat > 1 ? "-r" + std::to_string(run + 1) : "")))
          .string();
  const std::string result = base + ".result", log = base + ".log";
  const Plan p = PlanFor(o, vocab, side);
  std::vector<std::string> args = {self,
                                   "--only=" + side,
                                   "--vocab=" + std::to_string(vocab),
                                   "--config=" + o.config,
                                   "--batch=" + std::to_string(o.batch),
                                   "--steps=" + std::to_string(o.steps),
                                   "--warmup=" + std::to_string(o.warmup),
                                   "--big-vocab=" + std::to_string(o.big_vocab),
                                   "--dense-big-steps=" + std::to_string(o.dense_big_steps),
                                   "--dense-big-warmup=" + std::to_string(o.dense_big_warmup),
                                   "--rows=" + std::to_string(RowsFor(o, vocab)),
                                   "--workdir=" + o.workdir,
                                   "--result=" + result};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  std::cerr << "[deepfm_bench] vocab " << vocab << ": " << side;
  if (o.repeat > 1) std::cerr << " run " << run + 1 << "/" << o.repeat;
  std::cerr << " (" << p.warmup << " warm-up + " << p.steps
            << " timed steps) ..." << std::flush;
  const auto start = Clock::now();
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  const double wall = Seconds(start, Clock::now());
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::cerr << " FAILED\n--- " << log << " (tail) ---\n" << Tail(log, 4000) << "\n---\n";
    throw std::runtime_error(side + " child for vocab " + std::to_string(vocab) + " failed" +
                             (WIFSIGNALED(status) ? " (signal " + std::to_string(WTERMSIG(status)) + ")" : ""));
  }
  Result r = ReadResult(result);
  r["wall_seconds"] = wall;
  std::cerr << " " << static_cast<int64_t>(r["step_samples_per_sec"]) << " samples/s in the step, "
            << static_cast<int64_t>(r["e2e_samples_per_sec"]) << " end to end, " << static_cast<int64_t>(r["cpu_samples_per_sec"])
            << " per CPU-second (" << static_cast<int>(wall) << " s)\n";
  return r;
}

std::string Fixed(double v, int digits) {
  if (!std::isfinite(v)) return "n/a";
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(digits);
  s << v;
  return s.str();
}

std::string Json(double v) {
  if (!std::isfinite(v)) return "null";
  std::ostringstream s;
  s.precision(10);
  s << v;
  return s.str();
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// Both sides of one vocab: every run (--repeat) and their summary (medians of the rates, maxima
// of the memory figures).
struct Side {
  std::string impl;
  std::vector<Result> runs;
  Result summary;
};

const char* const kRateKeys[] = {"step_samples_per_sec", "e2e_samples_per_sec", "cpu_samples_per_sec"};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return NAN;
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void Summarize(Side* s) {
  s->summary = s->runs.front();
  for (const char* key : kRateKeys) {
    std::vector<double> v;
    for (auto& r : s->runs) v.push_back(r[key]);
    s->summary[key] = Median(v);
  }
  for (const char* key : {"peak_rss_mb", "rss_growth_mb"}) {
    double m = 0;
    for (auto& r : s->runs) m = std::max(m, r[key]);
    s->summary[key] = m;
  }
}

std::string JsonObject(const Result& r) {
  std::string s = "{";
  bool first = true;
  for (const auto& [key, v] : r) {
    s += (first ? "" : ", ") + JsonString(key) + ": " + Json(v);
    first = false;
  }
  return s + "}";
}

int RunParent(Options o, const char* self) {
  bool own_workdir = false;
  if (o.workdir.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "deepfm_bench.XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    o.workdir = tmpl;
    own_workdir = !o.keep_workdir;
  }
  fs::create_directories(o.workdir);
  o.workdir = fs::absolute(o.workdir).string();
  o.config = fs::absolute(o.config).string();
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  // results[v] = {shardrec, dense} of o.vocabs[v].
  std::vector<std::array<Side, 2>> results;
  for (int64_t vocab : o.vocabs) {
    // Generate the data once (the children find it and reuse it).
    const int64_t rows = RowsFor(o, vocab);
    std::cerr << "[deepfm_bench] vocab " << vocab << ": data (" << rows << " rows) in " << DataDir(o, vocab) << "\n";
    train::ResolveDataSources(MakeJob(o, vocab, rows, 1), o.workdir);
    std::array<Side, 2> sides;
    sides[0].impl = "shardrec";
    sides[1].impl = "dense";
    for (int run = 0; run < o.repeat; ++run) {  // interleaved, so both sides see the same machine
      for (Side& side : sides) side.runs.push_back(RunChild(o, self, vocab, side.impl, run));
    }
    for (Side& side : sides) Summarize(&side);
    results.push_back(std::move(sides));
  }

  auto ratio = [](Side& a, Side& b, const char* key) { return a.summary[key] / b.summary[key]; };

  // Markdown report.
  std::ostringstream md;
  md << "DeepFM, generated ctr data (13 dense, 26 categorical), batch " << o.batch << ", " << cores << " cores, "
     << o.repeat << (o.repeat == 1 ? " run" : " runs (medians)") << " per side, config " << o.config << "\n\n";
  md << "| vocab/field | impl | warm-up + timed steps | step samples/s | end-to-end samples/s | samples/CPU-s | "
        "peak RSS growth MB | peak RSS MB |\n";
  md << "|---:|---|---:|---:|---:|---:|---:|---:|\n";
  for (size_t v = 0; v < results.size(); ++v) {
    for (Side& side : results[v]) {
      Result& r = side.summary;
      md << "| " << o.vocabs[v] << " | " << side.impl << " | " << static_cast<int>(r["warmup"]) << " + "
         << static_cast<int>(r["steps"]) << " | " << Fixed(r["step_samples_per_sec"], 0) << " | "
         << Fixed(r["e2e_samples_per_sec"], 0) << " | " << Fixed(r["cpu_samples_per_sec"], 0) << " | "
         << Fixed(r["rss_growth_mb"], 0) << " | " << Fixed(r["peak_rss_mb"], 0) << " |\n";
    }
  }
  md << "\n| vocab/field | ShardRec/dense, step | ShardRec/dense, end to end | ShardRec/dense, per CPU-s |\n"
        "|---:|---:|---:|---:|\n";
  for (size_t v = 0; v < results.size(); ++v) {
    auto& [s, d] = results[v];
    md << "| " << o.vocabs[v] << " | " << Fixed(ratio(s, d, "step_samples_per_sec"), 2) << "x | "
       << Fixed(ratio(s, d, "e2e_samples_per_sec"), 2) << "x | " << Fixed(ratio(s, d, "cpu_samples_per_sec"), 2)
       << "x |\n";
  }
  std::cout << md.str() << std::flush;

  if (!o.out.empty()) {
    std::ostringstream js;
    js << "{\n  \"benchmark\": \"deepfm\",\n  \"config\": " << JsonString(o.config) << ",\n  \"batch_size\": " << o.batch
       << ",\n  \"cores\": " << cores << ",\n  \"repeat\": " << o.repeat << ",\n  \"results\": [";
    bool first = true;
    for (size_t v = 0; v < results.size(); ++v) {
      for (Side& side : results[v]) {
        Result r = side.summary;
        r.erase("wall_seconds");
        std::string obj = JsonObject(r);
        obj.insert(1, "\"vocab\": " + std::to_string(o.vocabs[v]) + ", \"impl\": \"" + side.impl + "\", ");
        if (o.repeat > 1) {
          std::string runs = ", \"runs\": [";
          for (size_t k = 0; k < side.runs.size(); ++k) runs += (k ? ", " : "") + JsonObject(side.runs[k]);
          obj.insert(obj.size() - 1, runs + "]");
        }
        js << (first ? "\n    " : ",\n    ") << obj;
        first = false;
      }
    }
    js << "\n  ],\n  \"ratios\": [";
    first = true;
    for (size_t v = 0; v < results.size(); ++v) {
      auto& [s, d] = results[v];
      js << (first ? "\n    " : ",\n    ") << "{\"vocab\": " << o.vocabs[v]
         << ", \"step\": " << Json(ratio(s, d, "step_samples_per_sec"))
         << ", \"end_to_end\": " << Json(ratio(s, d, "e2e_samples_per_sec"))
         << ", \"per_cpu_second\": " << Json(ratio(s, d, "cpu_samples_per_sec")) << "}";
      first = false;
    }
    js << "\n  ]\n}\n";
    std::ofstream out(o.out);
    out << js.str();
    if (!out) throw std::runtime_error("cannot write " + o.out);
    std::cerr << "[deepfm_bench] wrote " << o.out << "\n";
  }

  if (own_workdir) {
    std::error_code ec;
    fs::remove_all(o.workdir, ec);
  } else {
    std::cerr << "[deepfm_bench] kept " << o.workdir << " (per-side logs: <side>-<vocab>[-rN].log)\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // The same process set-up as `shardrec train`, inherited by the child processes of each side.
  EnsurePassiveOpenMp(argv);
  TuneMalloc();
  Options o;
  CLI::App app{"DeepFM training throughput: ShardRec trainer vs a dense nn::Embedding + Adam baseline"};
  app.add_option("--config", o.config, "DeepFM job config (protobuf text)")->capture_default_str();
  app.add_option("--vocab", o.vocabs, "vocabulary sizes per categorical field")->delimiter(',')->capture_default_str();
  app.add_option("--batch", o.batch, "batch size")->capture_default_str();
  app.add_option("--steps", o.steps, "timed steps per side")->capture_default_str();
  app.add_option("--warmup", o.warmup, "untimed warm-up steps before them")->capture_default_str();
  app.add_option("--big-vocab", o.big_vocab, "from this vocab size on, the dense side runs --dense-big-*")
      ->capture_default_str();
  app.add_option("--dense-big-steps", o.dense_big_steps, "timed dense steps at big vocabularies")->capture_default_str();
  app.add_option("--dense-big-warmup", o.dense_big_warmup, "dense warm-up steps at big vocabularies")
      ->capture_default_str();
  app.add_option("--repeat", o.repeat, "runs of each side per vocab, interleaved; the table shows medians")
      ->capture_default_str();
  app.add_option("--rows", o.rows, "generated rows per vocab (0 = enough for the steps)")->capture_default_str();
  app.add_option("--out", o.out, "also write the results as JSON here");
  app.add_option("--workdir", o.workdir, "data, logs and trainer outputs (default: a temporary folder, removed)");
  app.add_flag("--keep-workdir", o.keep_workdir, "keep the temporary folder");
  app.add_option("--only", o.only, "internal: run one side in this process")->check(CLI::IsMember({"shardrec", "dense"}));
  app.add_option("--result", o.result, "internal: where --only writes its numbers");
  // A later flag wins (bench/run_deepfm.sh passes --config and --out before the user's flags).
  for (CLI::Option* opt : app.get_options())
    if (opt->get_expected_max() == 1) opt->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (o.steps < 1 || o.warmup < 0 || o.dense_big_steps < 1 || o.dense_big_warmup < 0 || o.batch < 1 || o.repeat < 1 ||
      o.vocabs.empty()) {
    std::cerr << "error: need --steps >= 1, --warmup >= 0, --batch >= 1, --repeat >= 1 and at least one --vocab\n";
    return 2;
  }
  try {
    if (!o.only.empty()) {
      if (o.vocabs.size() != 1 || o.workdir.empty() || o.result.empty())
        throw std::runtime_error("--only needs one --vocab, --workdir and --result");
      Result r = o.only == "shardrec" ? RunShardRec(o, o.vocabs[0]) : RunDense(o, o.vocabs[0]);
      WriteResult(o.result, r);
      return 0;
    }
    return RunParent(o, argv[0]);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  }
}

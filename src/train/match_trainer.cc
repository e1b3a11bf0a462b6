#include "train/match_trainer.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "models/model.h"
#include "train/data_sources.h"
#include "train/dense_training.h"
#include "train/embedding_assembler.h"
#include "train/id_index.h"
#include "train/item_catalog.h"
#include "train/negative_sampler.h"
#include "train/prefetcher.h"
#include "train/progress.h"

namespace shardrec::train {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }





std::string Num(double v) {
  std::ostringstream s;
  s.precision(5);
  s << v;
  return s.str();
}

std::string MetricLine(const std::string& label, const MetricSet& m) {
  std::ostringstream line;
  line << label << ":";
  for (const auto& [k, v] : m) {
    const bool count = k == "queries" || k == "items";
    line << " " << k << " " << (count ? std::to_string(static_cast<int64_t>(v)) : Num(v));
  }
  return line.str();
}


// The rows of `input` at `rows` (every feature's embedding, mask and lengths, and the dense part).
models::ModelInput SelectRows(const models::ModelInput& input, const torch::Tensor& rows) {
  models::ModelInput out;
  out.schema = input.schema;
  out.dense = input.dense.index_select(0, rows);
  out.features.resize(input.features.size());
  for (size_t f = 0; f < input.features.size(); ++f) {
    const models::FeatureInput& in = input.features[f];
    models::FeatureInput& o = out.features[f];
    if (in.emb.defined()) o.emb = in.emb.index_select(0, rows);
    if (in.mask.defined()) o.mask = in.mask.index_select(0, rows);
    if (in.lengths.defined()) o.lengths = in.lengths.index_select(0, rows);
  }
  return out;
}

// The item features of `a` (rows first) and `b`, stacked into one input for one item-tower pass.
models::ModelInput ConcatItemInputs(const models::ModelInput& a, const models::ModelInput& b, const std::vector<int>& item_features) {
  models::ModelInput out;
  out.schema = a.schema;
  out.dense = torch::cat({a.dense, b.dense}, 0);
  out.features.resize(a.features.size());
  for (int f : item_features) {
    const models::FeatureInput &x = a.features[f], &y = b.features[f];
    models::FeatureInput& o = out.features[f];
    if (x.emb.defined()) o.emb = torch::cat({x.emb, y.emb}, 0);
    if (x.lengths.defined()) o.lengths = torch::cat({x.lengths, y.lengths}, 0);
  }
  return out;
}

}  // namespace

std::shared_ptr<models::MatchModel> CreateMatchModel(const config::Job& job, const data::FeatureSchema& schema) {
  auto model = std::dynamic_pointer_cast<models::MatchModel>(models::CreateModel(job.model(), schema));
  if (!model)
    throw ConfigError("field model: matching needs a recall model (dssm, facebook_dssm, youtube_dnn, gru4rec, narm, sasrec, mind)");
  return model;
}

MatchingSetup ResolveMatching(const config::Job& job, const data::FeatureSchema& schema, const models::MatchModel& model) {
  const config::Matching& mt = job.matching();
  MatchingSetup s;
  switch (mt.mode()) {
    case config::Matching::POINTWISE: s.mode = models::MatchLoss::kPointwise; break;
    case config::Matching::PAIRWISE: s.mode = models::MatchLoss::kPairwise; break;
    case config::Matching::LISTWISE: s.mode = models::MatchLoss::kListwise; break;
    default: s.mode = model.default_loss(); break;
  }
  s.pair_loss = mt.pair_loss() == config::Matching::HINGE ? PairLoss::kHinge : PairLoss::kBpr;
  s.margin = mt.margin();
  const config::MatchingNegatives& n = mt.negatives();
  s.sampled = n.source() != config::MatchingNegatives::IN_BATCH;
  s.in_batch = n.source() != config::MatchingNegatives::SAMPLED;
  s.logq = n.logq_correction();
  s.num_sampled = s.sampled ? n.num_sampled() : 0;
  s.popularity_power = n.popularity_power();
  s.sampler_seed = n.has_seed() ? n.seed() : job.trainer().seed();

  if (mt.has_item_feature()) {
    s.item_key = schema.Find(mt.item_feature());
    if (s.item_key < 0) throw ConfigError("field matching.item_feature: unknown feature \"" + mt.item_feature() + "\"");
  } else {
    for (int f : model.item_features())
      if (schema.features[f].kind == data::FeatureKind::kSparse) {
        s.item_key = f;
        break;
      }
    if (s.item_key < 0) throw ConfigError("field matching.item_feature: the model has no sparse item feature to key the catalogue; name one");
  }

  const config::MatchingRetrieval& r = mt.retrieval();
  RetrievalOptions& ro = s.retrieval;
  QueryOptions& q = ro.queries;
  q.last_positive_per_user = r.queries() == config::MatchingRetrieval::LAST_POSITIVE_PER_USER;
  const std::string user = mt.has_user_feature() ? mt.user_feature() : "user_id";
  q.user_feature = schema.Find(user);
  if (q.last_positive_per_user && q.user_feature < 0)
    throw ConfigError("field matching.user_feature: no feature \"" + user + "\" to group the queries by user");
  if (r.exclude_history()) {
    if (r.has_history_feature()) {
      q.history_feature = schema.Find(r.history_feature());
    } else {
      // The user-side sequence that lists items of the catalogue key's table.
      for (int f : model.user_features()) {
        const data::FeatureSpec& spec = schema.features[f];
        if (spec.kind == data::FeatureKind::kSequence && spec.table == schema.features[s.item_key].table) {
          q.history_feature = f;
          break;
        }
      }
    }
    if (q.history_feature < 0)
      throw ConfigError("field matching.retrieval.history_feature: exclude_history needs the history; no user feature is a sequence of the item's table");
  }
  q.max_queries = r.max_queries();
  q.batch_size = job.trainer().eval_batch_size();
  q.prefetch_depth = job.trainer().prefetch_depth();
  if (r.top_k_size() > 0) ro.top_k.assign(r.top_k().begin(), r.top_k().end());
  ro.faiss = r.backend() == config::MatchingRetrieval::FAISS;
  if (ro.faiss && !FaissAvailable())
    throw ConfigError("field matching.retrieval.backend: FAISS, but this build has no faiss (install libfaiss-dev with scripts/install-deps.sh and rebuild), or use EXACT");
  ro.faiss_index = r.faiss_index();
  ro.faiss_nprobe = r.faiss_nprobe();
  ro.query_batch = r.query_batch_size();
  ro.item_batch = r.item_batch_size();
  s.metric = r.metric();
  return s;
}


std::unique_ptr<MatchingRun> OpenMatchingRun(const config::Job& job, const std::string& run_dir) {
  auto run = std::make_unique<MatchingRun>();
  run->job = job;
  run->run_dir = run_dir;
  const std::string dense = (fs::path(run_dir) / "dense.pt").string();
  if (!fs::exists(dense)) throw UserError("no dense.pt in " + run_dir + " (is it the output folder of a finished `shardrec train`?)");
  const config::Trainer& t = job.trainer();
  at::set_num_threads(t.num_threads() > 0 ? t.num_threads() : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  run->schema = data::BuildSchema(job);
  run->sources = ResolveDataSources(job, run_dir);
  run->model = CreateMatchModel(job, run->schema);
  torch::serialize::InputArchive archive;
  archive.load_from(dense);
  run->model->load(archive);
  run->model->eval();
  run->setup = ResolveMatching(job, run->schema, *run->model);
  run->ps = OpenJobPs(job, run->schema, run_dir, /*fresh=*/false);
  run->catalog = std::make_unique<ItemCatalog>(run->schema, run->model->item_features(), run->setup.item_key);
  run->catalog->AddParts(run->sources, job.data().reader_threads());
  return run;
}

struct MatchTrainer::Impl {
  config::Job job;
  std::string output_dir;
  data::FeatureSchema schema;
  DataSources sources;
  std::unique_ptr<ps::PsClient> ps;
  std::shared_ptr<models::MatchModel> model;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  MatchingSetup setup;
  std::unique_ptr<ItemCatalog> catalog;
  std::unique_ptr<NegativeSampler> sampler;
  torch::Tensor in_batch_share, sampled_probability;  // over the catalogue, for log-Q
  Progress::Mode progress_mode = Progress::Mode::kAuto;

  EpochReport TrainEpoch(int epoch, double* step_seconds);
  MetricSet Evaluate(const DataPart& part, const std::string& label);
};

MatchTrainer::MatchTrainer(config::Job job, std::string output_dir) : impl_(std::make_unique<Impl>()) {
  impl_->job = std::move(job);
  impl_->output_dir = std::move(output_dir);
}

MatchTrainer::~MatchTrainer() = default;

MetricSet MatchTrainer::Impl::Evaluate(const DataPart& part, const std::string& label) {
  MetricSet m = EvaluateRetrieval(*model, schema, part, ps.get(), *catalog, setup.retrieval);
  LogLine(MetricLine(label, m));
  return m;
}

EpochReport MatchTrainer::Impl::TrainEpoch(int epoch, double* step_seconds) {
  const config::Trainer& t = job.trainer();
  data::PipelineOptions opts = sources.train.options;
  opts.batch_size = t.batch_size();
  opts.shuffle_buffer = job.data().shuffle_buffer();
  opts.seed = t.seed() + 7919ULL * epoch;
  data::BatchPipeline pipeline(schema, sources.train.files, opts);
  Prefetcher prefetch(schema, &pipeline, ps.get(), t.prefetch_depth(), /*read_only=*/false);
  CatalogInput negatives(schema, *catalog);

  int64_t expected = sources.approx_train_rows;
  if (t.max_steps_per_epoch() > 0)
    expected = std::min<int64_t>(expected > 0 ? expected : INT64_MAX, t.max_steps_per_epoch() * t.batch_size());
  Progress progress(progress_mode, "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(t.epochs()), expected, t.log_every());

  const data::FeatureSpec& key = schema.features[setup.item_key];
  const bool pointwise = setup.mode == models::MatchLoss::kPointwise;
  const bool auxiliary = model->num_tasks() > 1;
  const int k = setup.num_sampled;
  std::vector<int64_t> positive_rows, positive_items, draws, exclude_offsets;
  // Popular items are drawn many times: the item tower runs once per distinct drawn item.
  std::vector<int64_t> distinct_draws, draw_slots;
  IdIndex draw_index;

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
    const data::Batch& b = pb->batch;
    const int64_t rows = b.rows;

    // Positive rows and their catalogue items.
    positive_rows.clear();
    positive_items.clear();
    const data::SparseColumn& keys = b.sparse[key.sparse_index];
    for (int64_t r = 0; r < rows; ++r) {
      if (!(b.labels[r * b.num_labels] > 0.5f) || keys.offsets[r + 1] == keys.offsets[r]) continue;
      const int64_t item = catalog->Find(keys.ids[keys.offsets[r]]);
      if (item < 0) continue;
      positive_rows.push_back(r);
      positive_items.push_back(item);
    }
    const int64_t np = static_cast<int64_t>(positive_rows.size());
    const bool all_rows = pointwise || auxiliary;  // rows through the towers: all, or the positives
    if (np == 0 && !all_rows) {
      prefetch.Recycle(std::move(pb));
      continue;
    }
    // Sampled negatives: never the row's own item.
    if (setup.sampled && np > 0) {
      draws.resize(np * k);
      exclude_offsets.resize(np + 1);
      for (int64_t i = 0; i <= np; ++i) exclude_offsets[i] = i;
      sampler->DrawExcluding(np, k, positive_items.data(), exclude_offsets.data(), draws.data());
      distinct_draws.clear();
      draw_slots.resize(np * k);
      draw_index.Reset(static_cast<size_t>(np * k));
      for (int64_t j = 0; j < np * k; ++j) {
        if (draws[j] < 0) {  // no item: any slot will do, the loss masks it
          draw_slots[j] = 0;
          continue;
        }
        bool inserted;
        draw_slots[j] = draw_index.Insert(draws[j], &inserted);
        if (inserted) distinct_draws.push_back(draws[j]);
      }
      negatives.Prepare(distinct_draws.data(), static_cast<int64_t>(distinct_draws.size()), pb.get(), ps.get(), /*read_only=*/false);
    }
    phase("negatives");

    double loss_value;
    {
      AssembledBatch a = Assemble(schema, *pb, /*requires_grad=*/true);
      torch::Tensor positives = torch::tensor(positive_rows, torch::kInt64);
      models::ModelInput in = all_rows ? a.input : SelectRows(a.input, positives);
      torch::Tensor labels = all_rows ? a.labels : a.labels.index_select(0, positives);
      const int64_t r_rows = in.batch_size();
      // Positions of the positive rows among the tower rows.
      torch::Tensor local = all_rows ? positives : torch::arange(np, torch::kInt64);
      phase("assemble");

      torch::Tensor users = model->UserEmbedding(in);
      torch::Tensor item_vectors;
      if (setup.sampled && np > 0) {
        models::ModelInput neg = negatives.Assemble(a.rows, /*requires_grad=*/true);
        item_vectors = model->ItemEmbedding(ConcatItemInputs(in, neg, model->item_features()));
      } else {
        item_vectors = model->ItemEmbedding(in);
      }
      torch::Tensor own = item_vectors.narrow(0, 0, r_rows);
      torch::Tensor pos_items = torch::tensor(positive_items, torch::kInt64);

      // Candidate scores of the positive rows: [positive | sampled | in-batch].
      Candidates cand;
      if (np > 0) {
        torch::Tensor users_p = all_rows ? users.index_select(0, local) : users;
        torch::Tensor own_p = all_rows ? own.index_select(0, local) : own;
        torch::Tensor sampled_scores, drawn, in_batch_scores;
        if (setup.sampled) {
          torch::Tensor slots = torch::from_blob(draw_slots.data(), {np * k}, torch::kInt64);
          torch::Tensor distinct = item_vectors.narrow(0, r_rows, static_cast<int64_t>(distinct_draws.size()));
          torch::Tensor neg_vectors =
              distinct_draws.empty() ? torch::zeros({np, k, own_p.size(1)}) : distinct.index_select(0, slots).view({np, k, -1});
          drawn = torch::from_blob(draws.data(), {np, k}, torch::kInt64);
          sampled_scores = model->Score(users_p, torch::cat({own_p.unsqueeze(1), neg_vectors}, 1));
        }
        if (setup.in_batch) in_batch_scores = model->Score(users_p, own_p.unsqueeze(0));
        cand = AssembleCandidates(sampled_scores, drawn, in_batch_scores, pos_items);
        if (setup.logq)
          cand.logits = cand.logits - LogExpectedCount(cand.items, in_batch_share, setup.in_batch ? np - 1 : 0,
                                                       sampled_probability, setup.sampled ? k : 0);
      }
      const torch::Tensor &logits = cand.logits, &valid = cand.valid;

      torch::Tensor loss;
      if (pointwise) {
        // Every row's own item with its label, and each positive row's negatives with 0.
        torch::Tensor own_scores = model->Score(users, own.unsqueeze(1)).squeeze(1);
        if (setup.logq) {
          std::vector<int64_t> own_items(r_rows, -1);
          for (int64_t i = 0; i < np; ++i) own_items[positive_rows[i]] = positive_items[i];
          for (int64_t r = 0; r < r_rows; ++r)
            if (own_items[r] < 0 && keys.offsets[r + 1] > keys.offsets[r]) own_items[r] = catalog->Find(keys.ids[keys.offsets[r]]);
          own_scores = own_scores - LogExpectedCount(torch::tensor(own_items, torch::kInt64), in_batch_share,
                                                     setup.in_batch ? np - 1 : 0, sampled_probability, setup.sampled ? k : 0);
        }
        torch::Tensor target = labels.select(1, 0);
        torch::Tensor all_logits = own_scores, all_targets = target, all_valid = torch::ones({r_rows}, torch::kBool);
        if (np > 0 && logits.size(1) > 1) {
          const int64_t c = logits.size(1) - 1;
          all_logits = torch::cat({own_scores, logits.narrow(1, 1, c).reshape({-1})});
          all_targets = torch::cat({target, torch::zeros({np * c})});
          all_valid = torch::cat({all_valid, valid.narrow(1, 1, c).reshape({-1})});
        }
        loss = PointwiseLoss(all_logits, all_targets, all_valid);
      } else if (np > 0) {
        loss = setup.mode == models::MatchLoss::kListwise ? ListwiseLoss(logits, valid)
                                                          : PairwiseLoss(logits, valid, setup.pair_loss, setup.margin);
      } else {
        loss = torch::zeros({}, users.options());
      }
      if (auxiliary) loss = loss + model->AuxiliaryLoss(model->AuxiliaryOutputs(users, own), labels);
      phase("forward");
      optimizer->zero_grad();
      loss.backward();
      phase("backward");
      for (size_t tb = 0; tb < a.rows.size(); ++tb) {
        const torch::Tensor& g = a.rows[tb].grad();
        const int64_t n = static_cast<int64_t>(pb->tables[tb].ids.size());
        if (g.defined() && n > 0) {
          torch::Tensor gc = g.contiguous();
          ps->Push(static_cast<int>(tb), pb->tables[tb].ids.data(), n, gc.data_ptr<float>());
          prefetch.NotePush(static_cast<int>(tb), pb->tables[tb].ids.data(), n);
        }
        if (!setup.sampled || np == 0) continue;
        const torch::Tensor& leaf = negatives.leaf(static_cast<int>(tb));
        const std::vector<int64_t>& ids = negatives.pulled_ids(static_cast<int>(tb));
        if (leaf.defined() && leaf.grad().defined() && !ids.empty()) {
          torch::Tensor gc = leaf.grad().contiguous();
          ps->Push(static_cast<int>(tb), ids.data(), static_cast<int64_t>(ids.size()), gc.data_ptr<float>());
          prefetch.NotePush(static_cast<int>(tb), ids.data(), static_cast<int64_t>(ids.size()));
        }
      }
      phase("push");
      optimizer->step();
      loss_value = loss.item<double>();
      phase("optimizer");
    }
    *step_seconds += Seconds(step_start, Clock::now());
    rep.train_samples += rows;
    loss_sum += loss_value * rows;
    ++step;
    progress.Update(step, rep.train_samples, loss_value);
    prefetch.Recycle(std::move(pb));
  }
  rep.seconds = Seconds(start, Clock::now());
  rep.steps = step;
  rep.phase_seconds["refresh"] = prefetch.refresh_seconds();
  rep.phase_seconds["wait"] -= prefetch.refresh_seconds();
  rep.bad_lines = pipeline.bad_lines();
  rep.train_loss = rep.train_samples ? loss_sum / rep.train_samples : NAN;
  std::ostringstream s;
  s << "epoch " << epoch + 1 << ": " << rep.train_samples << " samples in " << Num(rep.seconds) << " s ("
    << static_cast<int64_t>(rep.train_samples / std::max(1e-9, rep.seconds)) << " samples/s), train loss " << Num(rep.train_loss);
  progress.Finish(s.str());
  return rep;
}

TrainReport MatchTrainer::Run() {
  Impl& m = *impl_;
  const config::Trainer& t = m.job.trainer();
  at::set_num_threads(t.num_threads() > 0 ? t.num_threads() : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  torch::manual_seed(t.seed());
  fs::create_directories(m.output_dir);
  m.progress_mode = static_cast<Progress::Mode>(t.progress());

  m.schema = data::BuildSchema(m.job);
  m.sources = ResolveDataSources(m.job, m.output_dir);
  m.model = CreateMatchModel(m.job, m.schema);
  m.setup = ResolveMatching(m.job, m.schema, *m.model);
  m.ps = OpenJobPs(m.job, m.schema, m.output_dir, /*fresh=*/true);
  const std::string ps_dir = EmbeddedPsDir(m.job, m.output_dir);
  const std::string best_ps = (fs::path(m.output_dir) / "ps-best").string();
  const bool can_rollback = !ps_dir.empty() && m.sources.validation.present();
  bool best_is_checkpointed = false;
  fs::remove_all(best_ps);

  m.catalog = std::make_unique<ItemCatalog>(m.schema, m.model->item_features(), m.setup.item_key);
  m.catalog->AddParts(m.sources, m.job.data().reader_threads());
  {
    std::ostringstream s;
    s << "catalogue: " << m.catalog->size() << " items, " << m.catalog->total_count() << " positive training rows; "
      << (m.setup.mode == models::MatchLoss::kPointwise ? "point-wise" : m.setup.mode == models::MatchLoss::kPairwise ? "pair-wise" : "list-wise")
      << " training with " << (m.setup.sampled ? std::to_string(m.setup.num_sampled) + " sampled" : std::string())
      << (m.setup.sampled && m.setup.in_batch ? " + " : "") << (m.setup.in_batch ? "in-batch" : "") << " negatives"
      << (m.setup.logq ? " (log-Q corrected)" : "");
    LogLine(s.str());
  }
  if (m.setup.sampled) {
    m.sampler = std::make_unique<NegativeSampler>(m.catalog->counts(), m.setup.popularity_power, m.setup.sampler_seed);
    m.sampled_probability = torch::tensor(m.sampler->probabilities(), torch::kFloat64);
  }
  if (m.setup.logq && m.setup.in_batch) {
    m.in_batch_share = torch::tensor(m.catalog->counts(), torch::kFloat64) / static_cast<double>(std::max<int64_t>(1, m.catalog->total_count()));
  }
  m.optimizer = MakeOptimizer(t.optimizer(), m.model->parameters());

  TrainReport report;
  double best = -1, step_seconds = 0, train_seconds = 0;
  std::vector<torch::Tensor> best_weights;
  int since_best = 0;
  for (int e = 0; e < t.epochs(); ++e) {
    const double lr = ScheduledLr(t, e);
    for (auto& g : m.optimizer->param_groups()) g.options().set_lr(lr);
    EpochReport ep = m.TrainEpoch(e, &step_seconds);
    train_seconds += ep.seconds;
    report.train_samples += ep.train_samples;
    if (m.sources.validation.present()) {
      ep.validation = m.Evaluate(m.sources.validation, "validation (epoch " + std::to_string(e + 1) + ")");
      const double value = ep.validation.count(m.setup.metric) ? ep.validation[m.setup.metric] : NAN;
      if (std::isfinite(value) && value > best) {
        best = value;
        report.best_epoch = e + 1;
        report.validation = ep.validation;
        best_weights = Snapshot(*m.model);
        since_best = 0;
        best_is_checkpointed = false;
        if (can_rollback && e + 1 < t.epochs()) {
          fs::remove_all(best_ps);
          m.ps->Checkpoint(best_ps);
          best_is_checkpointed = true;
        }
      } else if (t.early_stopping_patience() > 0 && ++since_best >= t.early_stopping_patience()) {
        report.epochs.push_back(ep);
        LogLine("early stopping: no better validation " + m.setup.metric + " for " + std::to_string(since_best) +
                " epoch(s); keeping epoch " + std::to_string(report.best_epoch));
        break;
      }
    }
    report.epochs.push_back(ep);
  }
  const bool last_is_best = !report.epochs.empty() && report.best_epoch == report.epochs.back().epoch;
  if (!best_weights.empty() && !last_is_best) {
    if (best_is_checkpointed) {
      LogLine("restoring epoch " + std::to_string(report.best_epoch) + " (dense weights and parameter-server rows)");
      Restore(*m.model, best_weights);
      m.ps.reset();
      ps::RestoreInProcessCheckpoint(best_ps, ps_dir);
      m.ps = OpenJobPs(m.job, m.schema, m.output_dir, /*fresh=*/false);
    } else {
      // Memory-only or remote shards cannot roll their rows back: dense weights of one epoch
      // with rows of another would be neither model, so the last epoch stays.
      LogLine("keeping the last epoch: the embedding rows of the best epoch " + std::to_string(report.best_epoch) +
              " cannot be restored (memory-only or remote shards)");
      report.best_epoch = report.epochs.back().epoch;
      report.validation = report.epochs.back().validation;
    }
  }
  fs::remove_all(best_ps);
  if (report.best_epoch == 0 && !report.epochs.empty()) {
    report.best_epoch = report.epochs.back().epoch;
    report.validation = report.epochs.back().validation;
  }
  if (m.sources.test.present()) report.test = m.Evaluate(m.sources.test, "test");

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

  torch::serialize::OutputArchive archive;
  m.model->save(archive);
  archive.save_to((fs::path(m.output_dir) / "dense.pt").string());
  const std::string tmp = (fs::path(m.output_dir) / "metrics.json.tmp").string();
  {
    std::ofstream out(tmp);
    out << MetricsJson(m.job, report);
    if (!out) throw UserError("cannot write " + tmp);
  }
  fs::rename(tmp, fs::path(m.output_dir) / "metrics.json");
  return report;
}

}  // namespace shardrec::train

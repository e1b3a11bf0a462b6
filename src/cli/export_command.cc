#include "cli/export_command.h"

#include <CLI/CLI.hpp>
#include <google/protobuf/text_format.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <unordered_set>

#include "common/error.h"
#include "config/config_loader.h"
#include "data/pipeline.h"
#include "train/embedding_assembler.h"
#include "train/match_trainer.h"
#include "train/prefetcher.h"
#include "train/progress.h"

namespace shardrec::cli {

namespace fs = std::filesystem;

namespace {

void WriteBinary(const std::string& path, const void* data, size_t bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
  if (!out) throw UserError("cannot write " + path);
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string Shape(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

const char* KindName(const data::FeatureSpec& f) {
  if (f.kind == data::FeatureKind::kDense) return "dense";
  if (f.kind == data::FeatureKind::kSparse) return "sparse";
  return "sequence";
}

const char* PoolingName(data::Pooling p) {
  return p == data::Pooling::kSum ? "sum" : p == data::Pooling::kConcat ? "concat" : "mean";
}

// The dense parameters the user tower reads (those that get a gradient from UserEmbedding on a
// real batch) and the buffers of their modules (batch-norm statistics).
std::vector<std::pair<std::string, torch::Tensor>> UserTowerTensors(train::MatchingRun& run) {
  data::PipelineOptions opts = run.sources.train.options;
  opts.batch_size = 8;
  opts.shuffle_buffer = 0;
  data::BatchPipeline pipeline(run.schema, run.sources.train.files, opts);
  train::Prefetcher prefetch(run.schema, &pipeline, run.ps.get(), 0, /*read_only=*/true);
  auto pb = prefetch.Next();
  if (!pb) throw UserError("the training data is empty: no batch to trace the user tower with");
  models::MatchModel& model = *run.model;
  model.eval();
  model.zero_grad();
  {
    train::AssembledBatch a = train::Assemble(run.schema, *pb, /*requires_grad=*/false);
    model.UserEmbedding(a.input).sum().backward();
  }
  std::set<std::string> modules;
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : model.named_parameters()) {
    if (!p.value().grad().defined()) continue;
    out.emplace_back(p.key(), p.value().detach());
    const size_t dot = p.key().rfind('.');
    modules.insert(dot == std::string::npos ? "" : p.key().substr(0, dot));
  }
  for (const auto& b : model.named_buffers()) {
    const size_t dot = b.key().rfind('.');
    if (modules.count(dot == std::string::npos ? "" : b.key().substr(0, dot))) out.emplace_back(b.key(), b.value());
  }
  model.zero_grad();
  return out;
}

}  // namespace

CLI::App* AddExportCommand(CLI::App& app, ExportCommandOptions* o) {
  auto* cmd = app.add_subcommand("export", "Write item embeddings and the user tower of a finished matching run for serving");
  cmd->add_option("config", o->config_path, "the run's job config")->required();
  cmd->add_option("--run", o->run_dir, "the run's output folder (dense.pt, ps/)")->required();
  cmd->add_option("--out", o->out_dir, "where the export goes")->required();
  cmd->add_option("--set", o->sets, "override a config field: field.path=value (repeatable)");
  return cmd;
}

int RunExportCommand(const ExportCommandOptions& o) {
  config::Job job = config::LoadJob(o.config_path, o.sets);
  if (!job.has_matching()) throw ConfigError("field matching: missing; `shardrec export` writes recall (matching) models");
  std::unique_ptr<train::MatchingRun> run = train::OpenMatchingRun(job, o.run_dir);
  models::MatchModel& model = *run->model;
  const data::FeatureSchema& schema = run->schema;
  fs::create_directories(fs::path(o.out_dir) / "tables");

  // Items.
  model.eval();
  torch::Tensor items = train::CatalogEmbeddings(model, schema, *run->catalog, run->ps.get(), run->setup.retrieval.item_batch);
  const int64_t n = items.size(0), dim = n > 0 ? items.size(1) : 0;
  WriteBinary((fs::path(o.out_dir) / "item_embeddings.f32").string(), items.data_ptr<float>(), sizeof(float) * items.numel());
  WriteBinary((fs::path(o.out_dir) / "item_ids.i64").string(), run->catalog->ids().data(), sizeof(int64_t) * n);

  // The user tower's dense tensors.
  std::vector<std::pair<std::string, torch::Tensor>> tensors = UserTowerTensors(*run);
  torch::serialize::OutputArchive archive;
  for (const auto& [name, t] : tensors) archive.write(name, t);
  archive.save_to((fs::path(o.out_dir) / "user_tower.pt").string());

  // Rows of every id the user features take in the data, per table.
  std::map<int, std::unordered_set<int64_t>> table_ids;
  std::vector<const data::FeatureSpec*> user_features;
  for (int f : model.user_features()) {
    user_features.push_back(&schema.features[f]);
    if (schema.features[f].kind != data::FeatureKind::kDense) table_ids[schema.features[f].table];
  }
  for (const train::DataPart* part : {&run->sources.train, &run->sources.validation, &run->sources.test}) {
    if (!part->present()) continue;
    data::PipelineOptions opts = part->options;
    opts.batch_size = 8192;
    opts.shuffle_buffer = 0;
    data::BatchPipeline pipeline(schema, part->files, opts);
    data::Batch batch;
    while (pipeline.Next(&batch))
      for (const data::FeatureSpec* f : user_features)
        if (f->kind != data::FeatureKind::kDense)
          table_ids[f->table].insert(batch.sparse[f->sparse_index].ids.begin(), batch.sparse[f->sparse_index].ids.end());
  }
  std::ostringstream tables_json;
  bool first_table = true;
  for (const auto& [t, idset] : table_ids) {
    std::vector<int64_t> ids(idset.begin(), idset.end());
    std::sort(ids.begin(), ids.end());
    const int64_t tdim = schema.tables[t].dim;
    std::vector<float> rows(ids.size() * tdim);
    for (size_t start = 0; start < ids.size(); start += 65536) {
      const int64_t m = static_cast<int64_t>(std::min<size_t>(65536, ids.size() - start));
      run->ps->Pull(t, ids.data() + start, m, rows.data() + start * tdim, /*read_only=*/true);
    }
    const std::string name = schema.tables[t].name;
    WriteBinary((fs::path(o.out_dir) / "tables" / (name + ".ids.i64")).string(), ids.data(), sizeof(int64_t) * ids.size());
    WriteBinary((fs::path(o.out_dir) / "tables" / (name + ".f32")).string(), rows.data(), sizeof(float) * rows.size());
    tables_json << (first_table ? "" : ",\n    ") << "{\"name\": " << JsonString(name) << ", \"dim\": " << tdim
                << ", \"rows\": " << ids.size() << ", \"ids_file\": " << JsonString("tables/" + name + ".ids.i64")
                << ", \"rows_file\": " << JsonString("tables/" + name + ".f32") << "}";
    first_table = false;
  }

  // The spec.
  std::string config_text;
  google::protobuf::TextFormat::PrintToString(job, &config_text);
  const google::protobuf::FieldDescriptor* kind = job.model().GetReflection()->GetOneofFieldDescriptor(
      job.model(), job.model().GetDescriptor()->FindOneofByName("kind"));
  std::ostringstream spec;
  spec << "{\n  \"model\": " << JsonString(kind ? kind->name() : "") << ",\n  \"embedding_dim\": " << dim
       << ",\n  \"num_interests\": " << model.num_interests() << ",\n  \"temperature\": " << model.temperature()
       << ",\n  \"score\": \"inner product of the user and item vectors (divided by temperature for the model's logits); "
          "multi-interest users: the best interest's\""
       << ",\n  \"items\": {\"count\": " << n << ", \"vectors_file\": \"item_embeddings.f32\", \"vectors_layout\": \"float32 [count, "
       << dim << "] row-major little-endian\", \"ids_file\": \"item_ids.i64\", \"ids_layout\": \"int64 [count], HashValue of the raw "
       << "value of feature " << schema.features[run->setup.item_key].name << "\"}"
       << ",\n  \"user_features\": [";
  for (size_t i = 0; i < user_features.size(); ++i) {
    const data::FeatureSpec& f = *user_features[i];
    spec << (i ? ",\n    " : "\n    ") << "{\"name\": " << JsonString(f.name) << ", \"column\": " << JsonString(f.column)
         << ", \"kind\": \"" << KindName(f) << "\"";
    if (f.kind == data::FeatureKind::kSequence)
      spec << ", \"pooling\": \"" << PoolingName(f.pooling) << "\", \"max_len\": " << f.max_len << ", \"separator\": "
           << JsonString(std::string(1, f.separator));
    if (f.kind != data::FeatureKind::kDense) spec << ", \"table\": " << JsonString(schema.tables[f.table].name) << ", \"dim\": " << f.dim;
    spec << "}";
  }
  spec << "\n  ],\n  \"tables\": [\n    " << tables_json.str() << "\n  ],\n  \"user_tower\": {\"file\": \"user_tower.pt\", \"tensors\": [";
  for (size_t i = 0; i < tensors.size(); ++i)
    spec << (i ? ", " : "") << "{\"name\": " << JsonString(tensors[i].first) << ", \"shape\": " << Shape(tensors[i].second) << "}";
  spec << "]},\n  \"config\": " << JsonString(config_text) << "\n}\n";
  std::ofstream((fs::path(o.out_dir) / "spec.json").string()) << spec.str();

  train::LogLine("export: " + std::to_string(n) + " item vectors of dim " + std::to_string(dim) + ", " + std::to_string(tensors.size()) +
                 " user-tower tensors, " + std::to_string(table_ids.size()) + " tables -> " + o.out_dir);
  std::cout << o.out_dir << std::endl;
  return 0;
}

}  // namespace shardrec::cli

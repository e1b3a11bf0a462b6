#include "train/job_checkpoint.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace shardrec::train {

namespace fs = std::filesystem;

namespace {

class ErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (first.empty()) first = std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " + message;
  }
  std::string first;
};

// Complete checkpoints under root, oldest first.
std::vector<fs::path> CompleteCheckpoints(const fs::path& root, std::vector<fs::path>* incomplete) {
  std::vector<fs::path> out;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory() || name.rfind("ckpt-", 0) != 0) continue;
    if (fs::exists(e.path() / kManifestFile))
      out.push_back(e.path());
    else if (incomplete)
      incomplete->push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  if (incomplete) std::sort(incomplete->begin(), incomplete->end());
  return out;
}

}  // namespace

std::string CheckpointFolder(const std::string& root, int64_t global_step) {
  char name[32];
  std::snprintf(name, sizeof(name), "ckpt-%012lld", static_cast<long long>(global_step));
  return (fs::path(root) / name).string();
}

void WriteManifest(const std::string& folder, const checkpoint::Manifest& manifest) {
  std::string text;
  google::protobuf::TextFormat::PrintToString(manifest, &text);
  const fs::path tmp = fs::path(folder) / (std::string(kManifestFile) + ".tmp");
  {
    std::ofstream out(tmp);
    out << "# ShardRec job checkpoint (resume with --resume " << folder << ")\n" << text;
    out.flush();
    if (!out) throw UserError("cannot write " + tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, fs::path(folder) / kManifestFile, ec);
  if (ec) throw UserError("cannot write " + (fs::path(folder) / kManifestFile).string() + ": " + ec.message());
}

checkpoint::Manifest ReadManifest(const std::string& folder) {
  const fs::path path = fs::path(folder) / kManifestFile;
  std::ifstream in(path);
  if (!in) throw UserError(path.string() + ": cannot read the checkpoint manifest (is " + folder + " a ShardRec checkpoint?)");
  std::stringstream text;
  text << in.rdbuf();
  checkpoint::Manifest m;
  google::protobuf::TextFormat::Parser parser;
  ErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text.str(), &m))
    throw UserError(path.string() + ":" + errors.first + " (the checkpoint manifest is damaged)");
  for (const std::string* part : {&m.dense(), &m.optimizer(), &m.ps()})
    if (part->empty() || !fs::exists(fs::path(folder) / *part))
      throw UserError(path.string() + ": names part '" + *part + "', which is missing from " + folder);
  return m;
}

std::string FindCheckpoint(const std::string& path) {
  if (fs::exists(fs::path(path) / kManifestFile)) return path;
  std::vector<fs::path> all = CompleteCheckpoints(path, nullptr);
  if (all.empty())
    throw UserError("--resume " + path + ": no complete checkpoint there (expected " + kManifestFile +
                    " or ckpt-*/" + kManifestFile + ")");
  return all.back().string();
}

void PruneCheckpoints(const std::string& root, int keep) {
  std::vector<fs::path> incomplete;
  std::vector<fs::path> all = CompleteCheckpoints(root, &incomplete);
  std::error_code ec;
  for (size_t i = 0; i + static_cast<size_t>(std::max(1, keep)) < all.size(); ++i) fs::remove_all(all[i], ec);
  if (!all.empty())
    for (const fs::path& p : incomplete)
      if (p < all.back()) fs::remove_all(p, ec);
}

void CheckSameShape(const checkpoint::Manifest& m, const std::string& folder, int num_workers, int num_shards,
                    const std::vector<std::string>& tables) {
  auto fail = [&](const std::string& what) {
    throw UserError("--resume " + folder + ": the checkpoint is of another job shape: " + what +
                    " (resume with the job's original workers, shards and tables)");
  };
  if (m.num_workers() != num_workers)
    fail("it has " + std::to_string(m.num_workers()) + " worker(s), this job " + std::to_string(num_workers));
  if (m.num_shards() != num_shards)
    fail("it has " + std::to_string(m.num_shards()) + " PS shard(s), this job " + std::to_string(num_shards));
  if (std::vector<std::string>(m.tables().begin(), m.tables().end()) != tables) fail("its embedding tables differ");
}

}  // namespace shardrec::train

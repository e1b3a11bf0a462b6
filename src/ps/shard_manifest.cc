#include "ps/shard_manifest.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "ps/row_optimizer.h"

namespace shardrec::ps {
namespace {

namespace fs = std::filesystem;

constexpr const char* kHeader = "shardrec-shard-manifest 1";

std::string Quote(const std::string& s) { return "'" + s + "'"; }

std::vector<ManifestTable> Parse(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("shard manifest " + path + ": cannot read");
  auto bad = [&](const std::string& why) {
    return std::runtime_error("shard manifest " + path + ": malformed (" + why + ")");
  };
  std::string line;
  if (!std::getline(in, line) || line != kHeader) throw bad("bad header line");
  std::vector<ManifestTable> tables;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    // dim \t stride \t optimizer \t name (the name last: it may hold anything but a newline)
    std::istringstream fields(line);
    ManifestTable t;
    std::string dim, stride;
    if (!std::getline(fields, dim, '\t') || !std::getline(fields, stride, '\t') ||
        !std::getline(fields, t.optimizer, '\t'))
      throw bad("line " + std::to_string(tables.size() + 2));
    std::getline(fields, t.name);
    try {
      t.dim = std::stoi(dim);
      t.stride = std::stoi(stride);
    } catch (const std::exception&) {
      throw bad("line " + std::to_string(tables.size() + 2));
    }
    tables.push_back(std::move(t));
  }
  return tables;
}

}  // namespace

const char* OptimizerName(OptimizerSpec::Kind kind) {
  switch (kind) {
    case OptimizerSpec::Kind::kAdam: return "adam";
    case OptimizerSpec::Kind::kAdagrad: return "adagrad";
    case OptimizerSpec::Kind::kSgd: return "sgd";
    case OptimizerSpec::Kind::kRowwiseAdagrad: return "rowwise_adagrad";
    case OptimizerSpec::Kind::kFtrl: return "ftrl";
  }
  return "unknown";
}

std::vector<ManifestTable> ManifestTables(const std::vector<TableSpec>& tables) {
  std::vector<ManifestTable> out;
  for (const TableSpec& t : tables) {
    if (t.name.find('\n') != std::string::npos)
      throw std::invalid_argument("table name " + Quote(t.name) + " holds a newline");
    out.push_back({t.name, t.dim, t.dim + RowOptimizer(t.optimizer, t.dim).state_floats(),
                   OptimizerName(t.optimizer.kind)});
  }
  return out;
}

void CheckOrWriteManifest(const std::string& dir, const std::vector<ManifestTable>& tables) {
  const fs::path path = fs::path(dir) / kShardManifestFile;
  if (!fs::exists(path)) {
    const fs::path tmp = path.string() + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << kHeader << "\n";
      for (const ManifestTable& t : tables)
        out << t.dim << '\t' << t.stride << '\t' << t.optimizer << '\t' << t.name << '\n';
      out.flush();
      if (!out) throw std::runtime_error("shard manifest " + tmp.string() + ": cannot write");
    }
    fs::rename(tmp, path);
    return;
  }
  const std::vector<ManifestTable> there = Parse(path.string());
  const std::string where = "shard directory " + dir + " was written for other tables: ";
  for (size_t i = 0; i < tables.size() || i < there.size(); ++i) {
    const std::string table = "table " + std::to_string(i);
    if (i >= there.size())
      throw std::runtime_error(where + table + " " + Quote(tables[i].name) + " is new (the directory has " +
                               std::to_string(there.size()) + " tables, now " + std::to_string(tables.size()) + ")");
    if (i >= tables.size())
      throw std::runtime_error(where + table + " " + Quote(there[i].name) + " is missing (the directory has " +
                               std::to_string(there.size()) + " tables, now " + std::to_string(tables.size()) + ")");
    const ManifestTable& a = there[i];
    const ManifestTable& b = tables[i];
    auto differs = [&](const std::string& what, const std::string& was, const std::string& now) {
      return std::runtime_error(where + table + " " + Quote(b.name) + ": " + what + " is " + was +
                                " in the directory, " + now + " now");
    };
    if (a.name != b.name) throw differs("name", Quote(a.name), Quote(b.name));
    if (a.dim != b.dim) throw differs("dim", std::to_string(a.dim), std::to_string(b.dim));
    if (a.optimizer != b.optimizer) throw differs("optimizer", a.optimizer, b.optimizer);
    if (a.stride != b.stride)
      throw differs("floats per row", std::to_string(a.stride), std::to_string(b.stride));
  }
}

}  // namespace shardrec::ps

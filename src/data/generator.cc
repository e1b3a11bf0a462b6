#include "data/generator.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <system_error>

#include "common/error.h"
#include "data/synthetic_layout.h"

namespace shardrec::data {

std::unique_ptr<SyntheticLayout> MakeSyntheticLayout(const GeneratorOptions& options) {
  switch (options.kind) {
    case SyntheticKind::kCtr:
      return MakeCtrLayout(options);
    case SyntheticKind::kSeq:
      return MakeSeqLayout(options);
    case SyntheticKind::kMatch:
      return MakeMatchLayout(options);
    case SyntheticKind::kMtl:
      return MakeMtlLayout(options);
  }
  throw UserError("unknown synthetic data kind");
}

namespace {

// Writes rows [begin, end) of `layout` to `path`, through a temporary file renamed at the end so
// that a reader never sees half a file.
void WriteCsv(const SyntheticLayout& layout, int64_t begin, int64_t end, const std::string& path) {
  const std::string tmp = path + ".tmp";
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(tmp.c_str(), "wb"), &std::fclose);
  if (!f) throw UserError(tmp + ": cannot create: " + std::strerror(errno));
  std::string buffer = layout.Header();
  buffer.push_back('\n');
  constexpr size_t kFlushBytes = 1 << 20;
  buffer.reserve(kFlushBytes + 4096);
  auto flush = [&] {
    if (std::fwrite(buffer.data(), 1, buffer.size(), f.get()) != buffer.size()) {
      throw UserError(tmp + ": write error: " + std::strerror(errno));
    }
    buffer.clear();
  };
  for (int64_t i = begin; i < end; ++i) {
    layout.AppendRow(i, &buffer);
    if (buffer.size() >= kFlushBytes) flush();
  }
  flush();
  if (std::fclose(f.release()) != 0) throw UserError(tmp + ": write error: " + std::strerror(errno));
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw UserError(path + ": cannot rename from " + tmp + ": " + ec.message());
}

}  // namespace

std::vector<std::string> GenerateData(const GeneratorOptions& options, const std::string& dir) {
  if (options.rows < 1) throw UserError("synthetic data: rows must be positive, got " + std::to_string(options.rows));
  if (options.vocab_size < 1) {
    throw UserError("synthetic data: vocab_size must be positive, got " + std::to_string(options.vocab_size));
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw UserError(dir + ": cannot create directory: " + ec.message());

  const std::unique_ptr<SyntheticLayout> layout = MakeSyntheticLayout(options);
  const int64_t n_train = options.rows * 8 / 10;
  const int64_t n_validation = options.rows / 10;
  const std::vector<std::string> paths = {dir + "/train.csv", dir + "/validation.csv", dir + "/test.csv"};
  WriteCsv(*layout, 0, n_train, paths[0]);
  WriteCsv(*layout, n_train, n_train + n_validation, paths[1]);
  WriteCsv(*layout, n_train + n_validation, options.rows, paths[2]);
  return paths;
}

SyntheticKind ParseSyntheticKind(const std::string& name) {
  if (name == "ctr") return SyntheticKind::kCtr;
  if (name == "seq") return SyntheticKind::kSeq;
  if (name == "match") return SyntheticKind::kMatch;
  if (name == "mtl") return SyntheticKind::kMtl;
  throw UserError("unknown synthetic data kind '" + name + "' (valid: ctr, seq, match, mtl)");
}

}  // namespace shardrec::data

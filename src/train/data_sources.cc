#include "train/data_sources.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/generator.h"
#include "train/progress.h"

namespace shardrec::train {

namespace fs = std::filesystem;

namespace {

const char* KindName(config::Synthetic::Kind k) {
  switch (k) {
    case config::Synthetic::SEQ: return "seq";
    case config::Synthetic::MATCH: return "match";
    case config::Synthetic::MTL: return "mtl";
    default: return "ctr";
  }
}

// Rows of the train files, estimated from their size and the length of their first lines.
int64_t EstimateRows(const std::vector<std::string>& files) {
  uint64_t bytes = 0, sample_bytes = 0, sample_lines = 0;
  for (const auto& f : files) {
    std::error_code ec;
    bytes += fs::file_size(f, ec);
    std::ifstream in(f);
    std::string line;
    while (sample_lines < 2000 && std::getline(in, line)) {
      sample_bytes += line.size() + 1;
      ++sample_lines;
    }
  }
  return sample_lines ? static_cast<int64_t>(bytes / (static_cast<double>(sample_bytes) / sample_lines)) : 0;
}

}  // namespace

DataSources ResolveDataSources(const config::Job& job, const std::string& output_dir) {
  const config::Data& d = job.data();
  DataSources s;
  data::PipelineOptions base;
  base.threads = d.reader_threads();
  base.skip_bad_lines = d.skip_bad_lines();
  base.max_bad_lines = d.max_bad_lines();

  if (d.has_synthetic()) {
    const config::Synthetic& syn = d.synthetic();
    std::ostringstream stamp;
    stamp << KindName(syn.kind()) << " rows=" << syn.rows() << " seed=" << syn.seed() << " vocab=" << syn.vocab_size();
    std::string dir = syn.has_dir() ? syn.dir()
                                    : (fs::path(output_dir) / "data" /
                                       (std::string(KindName(syn.kind())) + "-" + std::to_string(syn.rows()) + "-" +
                                        std::to_string(syn.seed()) + "-" + std::to_string(syn.vocab_size())))
                                          .string();
    std::string stamp_file = (fs::path(dir) / "GENERATED").string();
    std::ifstream in(stamp_file);
    std::string have;
    std::getline(in, have);
    std::vector<std::string> paths = {(fs::path(dir) / "train.csv").string(), (fs::path(dir) / "validation.csv").string(),
                                      (fs::path(dir) / "test.csv").string()};
    if (have != stamp.str()) {
      LogLine("generating synthetic data (" + stamp.str() + ") in " + dir);
      data::GeneratorOptions g;
      g.kind = data::ParseSyntheticKind(KindName(syn.kind()));
      g.rows = syn.rows();
      g.seed = syn.seed();
      g.vocab_size = syn.vocab_size();
      paths = data::GenerateData(g, dir);
      std::ofstream(stamp_file) << stamp.str() << "\n";
    }
    base.format = data::FileFormat::kCsv;
    s.train = {{paths[0]}, base};
    s.validation = {{paths[1]}, base};
    s.test = {{paths[2]}, base};
    s.approx_train_rows = syn.rows() * 8 / 10;
    return s;
  }

  const config::Files& f = d.files();
  base.format = f.format() == config::Files::TSV          ? data::FileFormat::kTsv
                : f.format() == config::Files::CRITEO_TSV ? data::FileFormat::kCriteoTsv
                                                          : data::FileFormat::kCsv;
  if (f.has_delimiter()) base.delimiter = f.delimiter() == "\\t" ? '\t' : f.delimiter()[0];
  base.column_names.assign(f.columns().begin(), f.columns().end());

  std::vector<std::string> train(f.train().begin(), f.train().end());
  s.train = {train, base};
  const bool split_val = f.validation_size() == 0 && d.validation_fraction() > 0;
  const bool split_test = f.test_size() == 0 && d.test_fraction() > 0;
  if (split_val || split_test) {
    data::SplitSpec split;
    split.validation_fraction = split_val ? d.validation_fraction() : 0;
    split.test_fraction = split_test ? d.test_fraction() : 0;
    split.part = data::SplitSpec::Part::kTrain;
    s.train.options.split = split;
    if (split_val) {
      s.validation = {train, base};
      s.validation.options.split = split;
      s.validation.options.split.part = data::SplitSpec::Part::kValidation;
    }
    if (split_test) {
      s.test = {train, base};
      s.test.options.split = split;
      s.test.options.split.part = data::SplitSpec::Part::kTest;
    }
  }
  if (f.validation_size() > 0) s.validation = {{f.validation().begin(), f.validation().end()}, base};
  if (f.test_size() > 0) s.test = {{f.test().begin(), f.test().end()}, base};
  s.approx_train_rows = static_cast<int64_t>(EstimateRows(train) * (1.0 - (split_val ? d.validation_fraction() : 0) -
                                                                     (split_test ? d.test_fraction() : 0)));
  return s;
}

}  // namespace shardrec::train

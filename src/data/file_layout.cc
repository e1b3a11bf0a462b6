#include "data/file_layout.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <unordered_map>

#include "common/error.h"
#include "data/csv_parser.h"

namespace shardrec::data {

std::vector<std::string> CriteoColumnNames() {
  std::vector<std::string> names;
  names.reserve(40);
  names.push_back("label");
  for (int i = 1; i <= 13; ++i) names.push_back("I" + std::to_string(i));
  for (int i = 1; i <= 26; ++i) names.push_back("C" + std::to_string(i));
  return names;
}

std::vector<std::string> ReadHeader(const std::string& path, char delimiter) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw DataError(path + ": cannot open: " + std::strerror(errno));
  std::string text;
  size_t record_end = 0;
  bool eof = false;
  constexpr size_t kBlock = 64 * 1024;
  constexpr size_t kMaxHeader = 64 * 1024 * 1024;
  while (record_end == 0 && !eof) {
    size_t old = text.size();
    text.resize(old + kBlock);
    size_t n = std::fread(text.data() + old, 1, kBlock, f.get());
    text.resize(old + n);
    if (n < kBlock) {
      if (std::ferror(f.get())) throw DataError(path + ": read error: " + std::strerror(errno));
      eof = true;
    }
    int newlines = 0;
    const char* e = FindRecordEnd(text.data(), text.data() + text.size(), delimiter, &newlines);
    if (e != nullptr) record_end = static_cast<size_t>(e - text.data());
    if (text.size() > kMaxHeader) throw DataError(path + ":1: header line longer than 64 MiB");
  }
  if (record_end == 0) record_end = text.size();
  if (record_end == 0) throw DataError(path + ": empty file, expected a header line");
  size_t begin = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;
  std::vector<std::string_view> fields;
  SplitResult r = SplitRecord(text.data() + begin, text.data() + record_end, delimiter, &fields);
  if (r.unterminated_quote) throw DataError(path + ":1: unterminated quoted field in the header");
  return std::vector<std::string>(fields.begin(), fields.end());
}

FileLayout ResolveLayout(const FeatureSchema& schema, const std::vector<std::string>& column_names,
                         const std::string& path, int file_index, char delimiter, bool has_header) {
  FileLayout layout;
  layout.path = path;
  layout.file_index = file_index;
  layout.delimiter = delimiter;
  layout.has_header = has_header;
  layout.num_fields = static_cast<int>(column_names.size());
  std::unordered_map<std::string, int> index;
  for (size_t i = 0; i < column_names.size(); ++i) index.emplace(column_names[i], static_cast<int>(i));
  auto field_of = [&](const std::string& column, const std::string& what) {
    auto it = index.find(column);
    if (it == index.end()) throw DataError(path + ": no column '" + column + "' for " + what);
    return it->second;
  };

  for (size_t i = 0; i < schema.label_columns.size(); ++i) {
    const std::string& column = schema.label_columns[i];
    ColumnAction a;
    a.kind = ColumnAction::Kind::kLabel;
    a.field = field_of(column, "label '" + column + "'");
    a.target = static_cast<int>(i);
    a.column = column;
    layout.actions.push_back(std::move(a));
  }
  for (const FeatureSpec& spec : schema.features) {
    ColumnAction a;
    a.field = field_of(spec.column, "feature '" + spec.name + "'");
    a.spec = &spec;
    a.column = spec.column;
    switch (spec.kind) {
      case FeatureKind::kDense:
        a.kind = ColumnAction::Kind::kDense;
        a.target = spec.dense_index;
        break;
      case FeatureKind::kSparse:
        a.kind = ColumnAction::Kind::kSparse;
        a.target = spec.sparse_index;
        break;
      case FeatureKind::kSequence:
        a.kind = ColumnAction::Kind::kSequence;
        a.target = spec.sparse_index;
        break;
    }
    layout.actions.push_back(std::move(a));
  }
  if (!schema.group_column.empty()) {
    ColumnAction a;
    a.kind = ColumnAction::Kind::kGroup;
    a.field = field_of(schema.group_column, "group_column");
    a.column = schema.group_column;
    layout.actions.push_back(std::move(a));
  }
  std::stable_sort(layout.actions.begin(), layout.actions.end(),
                   [](const ColumnAction& a, const ColumnAction& b) { return a.field < b.field; });
  return layout;
}

}  // namespace shardrec::data

#include "data/chunk_parser.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/hash.h"
#include "data/csv_parser.h"
#include "data/rng.h"

namespace shardrec::data {
namespace {

std::string Quote(std::string_view v) {
  constexpr size_t kMax = 64;
  std::string s = "'";
  s.append(v.substr(0, kMax));
  if (v.size() > kMax) s += "...";
  s += "'";
  return s;
}

float Transform(const FeatureSpec& spec, float x) {
  switch (spec.transform) {
    case DenseTransform::kNone:
      return x;
    case DenseTransform::kLog:
      return std::log1p(std::max(x, 0.f));
    case DenseTransform::kMinMax:
      if (!(spec.max > spec.min)) return 0.f;
      return std::clamp((x - spec.min) / (spec.max - spec.min), 0.f, 1.f);
  }
  return x;
}

}  // namespace

SplitSpec::Part SplitPartOf(const SplitSpec& split, int file_index, int64_t line) {
  const double u = HashToUnit(HashCombine(Mix64(static_cast<uint64_t>(file_index) + 0x5eed),
                                          static_cast<uint64_t>(line)));
  if (u < split.validation_fraction) return SplitSpec::Part::kValidation;
  if (u < split.validation_fraction + split.test_fraction) return SplitSpec::Part::kTest;
  return SplitSpec::Part::kTrain;
}

ChunkParser::ChunkParser(const FeatureSchema& schema, const SplitSpec& split, bool skip_bad_lines)
    : schema_(schema), split_(split), skip_bad_lines_(skip_bad_lines) {
  row_labels_.resize(schema.label_columns.size());
  row_dense_.resize(static_cast<size_t>(std::max(schema.num_dense, 0)));
}

void ChunkParser::Parse(Chunk* chunk, ParsedChunk* out) {
  const FileLayout& layout = *chunk->layout;
  const char delimiter = layout.delimiter;
  char* p = chunk->text.data();
  char* const end = p + chunk->text.size();
  const bool has_quotes = std::memchr(p, '"', chunk->text.size()) != nullptr;
  const bool all = split_.part == SplitSpec::Part::kAll;
  const int64_t workers = std::max(1, split_.num_workers);
  int64_t line = chunk->first_line;
  std::string error;
  while (p < end) {
    const int64_t record_line = line;
    if ((!all && SplitPartOf(split_, layout.file_index, record_line) != split_.part) ||
        (workers > 1 && record_line % workers != split_.worker_index)) {
      // Not in the requested part or another worker's: skip the record without parsing it.
      if (!has_quotes) {
        char* nl = static_cast<char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
        p = nl ? nl + 1 : end;
        ++line;
      } else {
        int newlines = 0;
        const char* next = FindRecordEnd(p, end, delimiter, &newlines);
        p = next ? const_cast<char*>(next) : end;
        line += newlines;
      }
      continue;
    }
    SplitResult r = SplitRecord(p, end, delimiter, &fields_);
    p = r.next;
    line += r.newlines;
    if (r.unterminated_quote) {
      error = "unterminated quoted field";
    } else if (IsBlankRecord(fields_)) {
      continue;
    } else if (static_cast<int>(fields_.size()) != layout.num_fields) {
      error = "expected " + std::to_string(layout.num_fields) + " fields, found " + std::to_string(fields_.size());
    } else if (ParseRow(layout, &out->rows, &error)) {
      continue;
    }
    out->bad_lines.push_back({out->rows.rows, layout.path + ":" + std::to_string(record_line) + ": " + error});
    if (!skip_bad_lines_) return;
  }
}

bool ChunkParser::ParseRow(const FileLayout& layout, Batch* out, std::string* error) {
  uint64_t group = 0;
  for (const ColumnAction& a : layout.actions) {
    const std::string_view v = fields_[static_cast<size_t>(a.field)];
    switch (a.kind) {
      case ColumnAction::Kind::kLabel: {
        float x = 0;
        if (!ParseFloat(v, &x) || !std::isfinite(x)) {
          *error = "label column '" + a.column + "': cannot parse " + Quote(v) + " as a number";
          for (SparseColumn& c : out->sparse) c.ids.resize(static_cast<size_t>(c.offsets.back()));
          return false;
        }
        row_labels_[static_cast<size_t>(a.target)] = x;
        break;
      }
      case ColumnAction::Kind::kDense: {
        const FeatureSpec& spec = *a.spec;
        float x = spec.fill;
        if (!IsMissingNumber(v)) {
          if (!ParseFloat(v, &x)) {
            *error = "column '" + a.column + "' (feature '" + spec.name + "'): cannot parse " + Quote(v) + " as a number";
            for (SparseColumn& c : out->sparse) c.ids.resize(static_cast<size_t>(c.offsets.back()));
            return false;
          }
          if (!std::isfinite(x)) x = spec.fill;
        }
        row_dense_[static_cast<size_t>(a.target)] = Transform(spec, x);
        break;
      }
      case ColumnAction::Kind::kSparse:
        out->sparse[static_cast<size_t>(a.target)].ids.push_back(static_cast<int64_t>(HashValue(v)));
        break;
      case ColumnAction::Kind::kSequence:
        AppendSequence(v, *a.spec, &out->sparse[static_cast<size_t>(a.target)].ids);
        break;
      case ColumnAction::Kind::kGroup:
        group = HashValue(v);
        break;
    }
  }
  out->labels.insert(out->labels.end(), row_labels_.begin(), row_labels_.end());
  out->dense.insert(out->dense.end(), row_dense_.begin(), row_dense_.end());
  for (SparseColumn& c : out->sparse) c.offsets.push_back(static_cast<int32_t>(c.ids.size()));
  if (!schema_.group_column.empty()) out->groups.push_back(group);
  ++out->rows;
  return true;
}

void ChunkParser::AppendSequence(std::string_view value, const FeatureSpec& spec, std::vector<int64_t>* ids) {
  tokens_.clear();
  size_t start = 0;
  for (;;) {
    const size_t pos = value.find(spec.separator, start);
    const std::string_view token = value.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start);
    if (!token.empty() && std::find(spec.padding.begin(), spec.padding.end(), token) == spec.padding.end()) {
      tokens_.push_back(token);
    }
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  size_t first = 0;
  if (spec.max_len > 0 && tokens_.size() > static_cast<size_t>(spec.max_len)) {
    first = tokens_.size() - static_cast<size_t>(spec.max_len);
  }
  for (size_t i = first; i < tokens_.size(); ++i) ids->push_back(static_cast<int64_t>(HashValue(tokens_[i])));
}

}  // namespace shardrec::data

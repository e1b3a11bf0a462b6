#pragma once
// How the columns of one input file feed a Batch: for every field the schema reads, what it
// becomes (label, dense value, sparse id(s), GAUC group). Resolved once per file from its header
// line or from the given column names.
#include <cstdint>
#include <string>
#include <vector>

#include "data/feature_schema.h"

namespace shardrec::data {

struct ColumnAction {
  enum class Kind : uint8_t { kLabel, kDense, kSparse, kSequence, kGroup };
  Kind kind = Kind::kSparse;
  int field = 0;   // position of the column in a record
  int target = 0;  // label index, dense_index or sparse_index
  const FeatureSpec* spec = nullptr;  // for features; nullptr for labels and the group
  std::string column;                 // the column's name, for messages
};

struct FileLayout {
  std::string path;
  int file_index = 0;
  char delimiter = ',';
  bool has_header = false;
  int num_fields = 0;
  std::vector<ColumnAction> actions;  // ordered by field
};

// The columns of the raw Criteo Kaggle/Terabyte files: label, I1..I13, C1..C26.
std::vector<std::string> CriteoColumnNames();

// The names in the first record of `path` (a UTF-8 byte order mark dropped). Throws DataError when
// the file can't be read or is empty.
std::vector<std::string> ReadHeader(const std::string& path, char delimiter);

// Maps the schema onto `column_names`. `schema` must outlive the layout. Throws
// DataError("PATH: no column 'X' for feature 'Y'") when a column is missing.
FileLayout ResolveLayout(const FeatureSchema& schema, const std::vector<std::string>& column_names,
                         const std::string& path, int file_index, char delimiter, bool has_header);

}  // namespace shardrec::data

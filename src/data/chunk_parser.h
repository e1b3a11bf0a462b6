#pragma once
// Turns a chunk of whole records of one file into columnar rows. One ChunkParser per parser
// thread: it owns the scratch buffers, so parsing allocates nothing per row.
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "data/batch.h"
#include "data/feature_schema.h"
#include "data/file_layout.h"
#include "data/pipeline.h"

namespace shardrec::data {

// Whole records cut from one file by the reader.
struct Chunk {
  int64_t seq = 0;                     // position in the stream of chunks
  const FileLayout* layout = nullptr;  // the file
  int64_t first_line = 1;              // 1-based line number of text[0], the header counted
  std::string text;
  std::exception_ptr error;  // a read error at this point of the stream (text is then empty)
};

struct BadLine {
  int64_t rows_before = 0;  // good rows of the chunk that precede it
  std::string message;      // "FILE:LINE: what"
};

struct ParsedChunk {
  int64_t seq = 0;
  Batch rows;                       // the chunk's rows of the requested split, in file order
  std::vector<BadLine> bad_lines;   // without skipping, parsing stops at the first one
  std::exception_ptr error;         // passed on from Chunk::error
};

// Which part of a hash split the record (file_index, line) belongs to.
SplitSpec::Part SplitPartOf(const SplitSpec& split, int file_index, int64_t line);

class ChunkParser {
 public:
  ChunkParser(const FeatureSchema& schema, const SplitSpec& split, bool skip_bad_lines);

  // Parses `chunk` (its text is modified) into out->rows, which must be prepared for the schema
  // and is appended to.
  void Parse(Chunk* chunk, ParsedChunk* out);

 private:
  // Appends the row in fields_ to `out`; false with *error set (and nothing appended) when a
  // value is malformed.
  bool ParseRow(const FileLayout& layout, Batch* out, std::string* error);
  void AppendSequence(std::string_view value, const FeatureSpec& spec, std::vector<int64_t>* ids);

  const FeatureSchema& schema_;
  SplitSpec split_;
  bool skip_bad_lines_;
  std::vector<std::string_view> fields_;
  std::vector<std::string_view> tokens_;
  std::vector<float> row_labels_;
  std::vector<float> row_dense_;
};

}  // namespace shardrec::data

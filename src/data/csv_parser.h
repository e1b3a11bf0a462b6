#pragma once
// Splitting delimited text into records and fields. RFC 4180 quoting: a field that starts with a
// double quote may hold delimiters, doubled quotes ("") and line breaks; a quote anywhere else is
// an ordinary character. A record ends at an unquoted '\n'; a '\r' before it is dropped.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace shardrec::data {

struct SplitResult {
  char* next = nullptr;     // first byte after the record (after its '\n', or the end)
  int newlines = 0;         // '\n' bytes the record spans, its terminator included
  bool unterminated_quote = false;  // the text ended inside a quoted field
};

// Splits the record starting at `p` into `fields` (cleared first). Quoted fields are unescaped in
// place, so the views point into [p, end) and the text is modified.
SplitResult SplitRecord(char* p, char* end, char delimiter, std::vector<std::string_view>* fields);

// The end of the record starting at `p` (just after its '\n'), or nullptr when the record does
// not end before `end`. *newlines counts the '\n' bytes it spans.
const char* FindRecordEnd(const char* p, const char* end, char delimiter, int* newlines);

// Length of the longest prefix of [data, data + size) made of complete records.
size_t CompleteRecordsLength(const char* data, size_t size, char delimiter);

// True for a record that holds nothing: an empty line.
inline bool IsBlankRecord(const std::vector<std::string_view>& fields) {
  return fields.size() == 1 && fields[0].empty();
}

// Parses a decimal or exponent float, ignoring surrounding blanks; false if `s` is not a number.
bool ParseFloat(std::string_view s, float* out);

// Values that mean "no value" in a numeric column: "", "NA", "N/A", "nan", "null" (any case).
bool IsMissingNumber(std::string_view s);

}  // namespace shardrec::data

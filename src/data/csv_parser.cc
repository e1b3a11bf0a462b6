#include "data/csv_parser.h"

#include <charconv>
#include <cstring>

namespace shardrec::data {

SplitResult SplitRecord(char* p, char* end, char delimiter, std::vector<std::string_view>* fields) {
  fields->clear();
  SplitResult r;
  for (;;) {
    if (p < end && *p == '"') {
      // Quoted field: unescape in place; w trails p.
      char* start = p;
      char* w = p;
      ++p;
      for (;;) {
        if (p == end) {
          fields->emplace_back(start, static_cast<size_t>(w - start));
          r.next = end;
          r.unterminated_quote = true;
          return r;
        }
        char c = *p++;
        if (c == '"') {
          if (p < end && *p == '"') {
            *w++ = '"';
            ++p;
            continue;
          }
          break;
        }
        if (c == '\n') ++r.newlines;
        *w++ = c;
      }
      // After the closing quote: be lenient and keep any stray characters up to the delimiter.
      char* stray = w;
      while (p < end && *p != delimiter && *p != '\n') *w++ = *p++;
      if ((p == end || *p == '\n') && w > stray && w[-1] == '\r') --w;
      fields->emplace_back(start, static_cast<size_t>(w - start));
    } else {
      char* start = p;
      while (p < end && *p != delimiter && *p != '\n') ++p;
      size_t n = static_cast<size_t>(p - start);
      if ((p == end || *p == '\n') && n > 0 && start[n - 1] == '\r') --n;
      fields->emplace_back(start, n);
    }
    if (p == end) {
      r.next = end;
      return r;
    }
    if (*p == '\n') {
      ++r.newlines;
      r.next = p + 1;
      return r;
    }
    ++p;  // the delimiter
  }
}

const char* FindRecordEnd(const char* p, const char* end, char delimiter, int* newlines) {
  int nl = 0;
  bool field_start = true;
  while (p < end) {
    char c = *p;
    if (field_start && c == '"') {
      ++p;
      for (;;) {
        if (p == end) return nullptr;
        char q = *p++;
        if (q == '"') {
          if (p < end && *p == '"') {
            ++p;
            continue;
          }
          if (p == end) return nullptr;  // can't tell yet whether a '"' follows
          break;
        }
        if (q == '\n') ++nl;
      }
      field_start = false;
      continue;
    }
    ++p;
    if (c == '\n') {
      *newlines = nl + 1;
      return p;
    }
    field_start = c == delimiter;
  }
  return nullptr;
}

size_t CompleteRecordsLength(const char* data, size_t size, char delimiter) {
  if (size == 0) return 0;
  if (std::memchr(data, '"', size) == nullptr) {
    // No quotes: records end exactly at the line breaks.
    const char* p = data + size;
    while (p > data && p[-1] != '\n') --p;
    return static_cast<size_t>(p - data);
  }
  const char* p = data;
  const char* end = data + size;
  const char* last = data;
  int nl = 0;
  while (const char* next = FindRecordEnd(p, end, delimiter, &nl)) {
    last = p = next;
  }
  return static_cast<size_t>(last - data);
}

namespace {
bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

bool EqualsLower(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsBlank(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsBlank(s.back())) s.remove_suffix(1);
  return s;
}
}  // namespace

bool ParseFloat(std::string_view s, float* out) {
  s = Trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, *out);
  if (ptr != end) return false;
  // Out of range: from_chars leaves *out alone; saturate like strtof does.
  if (ec == std::errc::result_out_of_range) {
    double d = 0;
    auto [dptr, dec] = std::from_chars(s.data(), end, d);
    if (dec != std::errc() || dptr != end) return false;
    *out = static_cast<float>(d);
    return true;
  }
  return ec == std::errc();
}

bool IsMissingNumber(std::string_view s) {
  s = Trim(s);
  return s.empty() || EqualsLower(s, "na") || EqualsLower(s, "n/a") || EqualsLower(s, "nan") ||
         EqualsLower(s, "null");
}

}  // namespace shardrec::data

#include "config/config_loader.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <fstream>
#include <sstream>

#include "common/error.h"
#include "config/config_locator.h"
#include "config/config_validator.h"
#include "config/overrides.h"

namespace shardrec::config {

namespace pb = google::protobuf;

namespace {

// Keeps the first parse error; protobuf reports line and column 0-based.
class FirstErrorCollector : public pb::io::ErrorCollector {
 public:
  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    if (!has_error) {
      has_error = true;
      this->line = line;
      this->column = column;
      this->message = message;
    }
  }
  bool has_error = false;
  int line = 0;
  int column = 0;
  std::string message;
};

// The dotted path of the field being parsed at (line, column): a light scan of the text that
// follows `name {` / `name: {` nesting and the last `name:`, skipping strings and comments.
// Protobuf's own message says what went wrong but not always in which field.
std::string FieldPathAt(const std::string& text, int line, int column) {
  std::vector<std::string> stack;
  std::string ident, pending;
  int cur_line = 0, cur_col = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (cur_line > line || (cur_line == line && cur_col >= column)) break;
    char c = text[i];
    if (c == '#') {
      while (i < text.size() && text[i] != '\n') ++i;
      --i;
      cur_col++;
      continue;
    }
    if (c == '"' || c == '\'') {
      char q = c;
      for (++i, ++cur_col; i < text.size() && text[i] != q && text[i] != '\n'; ++i, ++cur_col) {
        if (text[i] == '\\') ++i, ++cur_col;
      }
      cur_col++;
      continue;
    }
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '[' || c == ']' || c == '.') {
      if (!ident.empty() && i > 0 && !(std::isalnum(static_cast<unsigned char>(text[i - 1])) || text[i - 1] == '_' ||
                                       text[i - 1] == '[' || text[i - 1] == ']' || text[i - 1] == '.'))
        ident.clear();
      ident += c;
    } else if (c == ':') {
      pending = ident;
    } else if (c == '{' || c == '<') {
      stack.push_back(pending.empty() || ident != pending ? ident : pending);
      pending.clear();
      ident.clear();
    } else if (c == '}' || c == '>') {
      if (!stack.empty()) stack.pop_back();
      pending.clear();
      ident.clear();
    }
    if (c == '\n') {
      cur_line++;
      cur_col = 0;
    } else {
      cur_col++;
    }
  }
  // The field on the error's own statement: the last `name:` seen (or the identifier being read).
  std::string field = !pending.empty() ? pending : ident;
  std::string path;
  for (const auto& s : stack) path += s + ".";
  return path + field;
}

}  // namespace

Job ParseJob(const std::string& text, const std::string& filename, const std::vector<std::string>& overrides) {
  Job job;
  pb::TextFormat::Parser parser;
  FirstErrorCollector errors;
  pb::TextFormat::ParseInfoTree tree;
  parser.RecordErrorsTo(&errors);
  parser.WriteLocationsTo(&tree);
  if (!parser.ParseFromString(text, &job) || errors.has_error) {
    std::string field = FieldPathAt(text, errors.line, errors.column);
    throw ConfigError(filename + ":" + std::to_string(errors.line + 1) + ":" + std::to_string(errors.column + 1) +
                      ": field " + (field.empty() ? "?" : field) + ": " + errors.message);
  }
  ConfigLocator locator(filename, &tree);
  for (const std::string& o : overrides) ApplyOverride(&job, o, &locator);
  ValidateJob(job, locator);
  return job;
}

Job LoadJob(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot read the config file");
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseJob(ss.str(), path, overrides);
}

}  // namespace shardrec::config

#pragma once
// Maps a field of a parsed job to where it came from (FILE:LINE:COL, or the --set that changed
// it), so that errors found after parsing still point at the line to fix.
#include <google/protobuf/text_format.h>

#include <set>
#include <string>
#include <vector>

#include "common/error.h"

namespace shardrec::config {

// One step of a path from the root message: a field, and an element index for repeated fields
// (-1 for singular ones).
struct PathStep {
  const google::protobuf::FieldDescriptor* field;
  int index = -1;
};
using FieldPath = std::vector<PathStep>;

class ConfigLocator {
 public:
  ConfigLocator(std::string filename, const google::protobuf::TextFormat::ParseInfoTree* tree)
      : filename_(std::move(filename)), tree_(tree) {}

  // Records that `path` (dotted, e.g. "trainer.batch_size") was set by `assignment`.
  void MarkOverridden(const std::string& dotted_path, const std::string& assignment);

  // "FILE:LINE:COL" of the deepest part of `path` present in the file, or "--set A" when an
  // override set it (or one of its parents).
  std::string Locate(const google::protobuf::Message& root, const FieldPath& path) const;

  // "field trainer.batch_size" (repeated elements with a name show it: features[C1].table).
  static std::string Describe(const google::protobuf::Message& root, const FieldPath& path);

  // Throws ConfigError "WHERE: field PATH: what".
  [[noreturn]] void Fail(const google::protobuf::Message& root, const FieldPath& path,
                         const std::string& what) const;

  const std::string& filename() const { return filename_; }

 private:
  std::string filename_;
  const google::protobuf::TextFormat::ParseInfoTree* tree_;
  std::vector<std::pair<std::string, std::string>> overridden_;  // dotted path, assignment
};

}  // namespace shardrec::config

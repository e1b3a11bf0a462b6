#include "config/config_locator.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

namespace shardrec::config {

namespace pb = google::protobuf;

namespace {

std::string DottedName(const FieldPath& path, size_t upto) {
  std::string s;
  for (size_t i = 0; i < upto && i < path.size(); ++i) {
    if (i) s += '.';
    s += path[i].field->name();
  }
  return s;
}

// True when `prefix` equals `path` or is a dotted parent of it.
bool IsPrefix(const std::string& prefix, const std::string& path) {
  return path.compare(0, prefix.size(), prefix) == 0 && (path.size() == prefix.size() || path[prefix.size()] == '.');
}

}  // namespace

void ConfigLocator::MarkOverridden(const std::string& dotted_path, const std::string& assignment) {
  overridden_.emplace_back(dotted_path, assignment);
}

std::string ConfigLocator::Locate(const pb::Message& root, const FieldPath& path) const {
  const std::string dotted = DottedName(path, path.size());
  for (auto it = overridden_.rbegin(); it != overridden_.rend(); ++it) {
    if (IsPrefix(it->first, dotted) || IsPrefix(dotted, it->first)) return "--set " + it->second;
  }
  // Walk down the parse tree as far as the file has the path; report the deepest location.
  const pb::TextFormat::ParseInfoTree* tree = tree_;
  pb::TextFormat::ParseLocation best;
  for (const PathStep& step : path) {
    if (tree == nullptr) break;
    int idx = step.field->is_repeated() ? step.index : -1;
    if (step.field->is_repeated() && idx < 0) idx = 0;
    pb::TextFormat::ParseLocation loc = tree->GetLocation(step.field, idx);
    if (loc.line < 0) break;
    best = loc;
    if (step.field->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE) break;
    tree = tree->GetTreeForNested(step.field, idx);
  }
  if (best.line < 0) return filename_;
  return filename_ + ":" + std::to_string(best.line + 1) + ":" + std::to_string(best.column + 1);
}

std::string ConfigLocator::Describe(const pb::Message& root, const FieldPath& path) {
  std::string s;
  const pb::Message* msg = &root;
  for (size_t i = 0; i < path.size(); ++i) {
    const PathStep& step = path[i];
    if (i) s += '.';
    s += step.field->name();
    if (step.field->is_repeated() && step.index >= 0) {
      std::string label = std::to_string(step.index);
      const pb::Message* elem = nullptr;
      if (msg && step.field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE &&
          step.index < msg->GetReflection()->FieldSize(*msg, step.field)) {
        elem = &msg->GetReflection()->GetRepeatedMessage(*msg, step.field, step.index);
        const pb::FieldDescriptor* name = elem->GetDescriptor()->FindFieldByName("name");
        if (name && name->type() == pb::FieldDescriptor::TYPE_STRING && !name->is_repeated()) {
          std::string n = elem->GetReflection()->GetString(*elem, name);
          if (!n.empty()) label = n;
        }
      }
      s += "[" + label + "]";
      msg = elem;
    } else if (msg && step.field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE && !step.field->is_repeated()) {
      msg = &msg->GetReflection()->GetMessage(*msg, step.field);
    } else {
      msg = nullptr;
    }
  }
  return s;
}

void ConfigLocator::Fail(const pb::Message& root, const FieldPath& path, const std::string& what) const {
  throw ConfigError(Locate(root, path) + ": field " + Describe(root, path) + ": " + what);
}

}  // namespace shardrec::config

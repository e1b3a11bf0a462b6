#include "config/overrides.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/stubs/strutil.h>
#include <google/protobuf/text_format.h>

#include <cctype>

#include "common/error.h"

namespace shardrec::config {

namespace pb = google::protobuf;

namespace {

class FirstError : public pb::io::ErrorCollector {
 public:
  void AddError(int, pb::io::ColumnNumber, const std::string& m) override {
    if (message.empty()) message = m;
  }
  std::string message;
};

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == sep) {
      out.push_back(Trim(s.substr(start, i - start)));
      start = i + 1;
    }
  }
  return out;
}

bool Quoted(const std::string& v) { return v.size() >= 2 && (v.front() == '"' || v.front() == '\''); }

// Turns a user's value into text-format syntax for field `f`: quotes bare strings, upper-cases
// enum names (so `--set ...activation=dice` works), and wraps lists in [].
std::string ValueText(const pb::FieldDescriptor* f, std::string v) {
  auto scalar = [&](std::string x) {
    x = Trim(x);
    if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_STRING && !Quoted(x)) return "\"" + pb::CEscape(x) + "\"";
    if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_ENUM && !x.empty() && !std::isdigit(static_cast<unsigned char>(x[0])) && x[0] != '-') {
      for (char& c : x) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return x;
  };
  if (!f->is_repeated()) return scalar(v);
  v = Trim(v);
  if (!v.empty() && v.front() == '[' && v.back() == ']') v = v.substr(1, v.size() - 2);
  std::string out = "[";
  if (!Trim(v).empty()) {
    auto parts = Split(v, ',');
    for (size_t i = 0; i < parts.size(); ++i) out += (i ? ", " : "") + scalar(parts[i]);
  }
  return out + "]";
}

}  // namespace

void ApplyOverride(Job* job, const std::string& assignment, ConfigLocator* locator) {
  const std::string where = "--set " + assignment;
  size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) throw ConfigError(where + ": expected FIELD.PATH=VALUE");
  const std::string path = Trim(assignment.substr(0, eq));
  const std::string value = Trim(assignment.substr(eq + 1));
  std::vector<std::string> comps = Split(path, '.');

  pb::Message* msg = job;
  std::string dotted;
  for (size_t i = 0; i < comps.size(); ++i) {
    std::string name = comps[i], key;
    if (size_t lb = name.find('['); lb != std::string::npos) {
      if (name.back() != ']') throw ConfigError(where + ": bad element selector in '" + comps[i] + "'");
      key = name.substr(lb + 1, name.size() - lb - 2);
      name = name.substr(0, lb);
    }
    const pb::Descriptor* d = msg->GetDescriptor();
    const pb::FieldDescriptor* f = d->FindFieldByName(name);
    if (f == nullptr) {
      std::string fields;
      for (int k = 0; k < d->field_count(); ++k) fields += (k ? ", " : "") + d->field(k)->name();
      throw ConfigError(where + ": no field '" + name + "' in " + (dotted.empty() ? "the job" : dotted) +
                        " (" + d->full_name() + " has: " + fields + ")");
    }
    dotted += (dotted.empty() ? "" : ".") + name;
    const bool last = i + 1 == comps.size();
    const pb::Reflection* r = msg->GetReflection();

    if (!key.empty()) {
      if (!f->is_repeated() || f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE)
        throw ConfigError(where + ": '" + name + "' is not a list of messages; [" + key + "] selects nothing");
      pb::Message* elem = nullptr;
      for (int k = 0; k < r->FieldSize(*msg, f) && !elem; ++k) {
        pb::Message* e = r->MutableRepeatedMessage(msg, f, k);
        const pb::FieldDescriptor* nf = e->GetDescriptor()->FindFieldByName("name");
        if (nf && !nf->is_repeated() && e->GetReflection()->GetString(*e, nf) == key) elem = e;
      }
      if (!elem && !key.empty() && std::all_of(key.begin(), key.end(), ::isdigit) && std::stoi(key) < r->FieldSize(*msg, f))
        elem = r->MutableRepeatedMessage(msg, f, std::stoi(key));
      if (!elem) throw ConfigError(where + ": no element of '" + dotted + "' is named '" + key + "'");
      msg = elem;
      if (last) {
        msg->Clear();
        std::string body = value;
        if (!body.empty() && body.front() == '{' && body.back() == '}') body = body.substr(1, body.size() - 2);
        FirstError err;
        pb::TextFormat::Parser p;
        p.RecordErrorsTo(&err);
        if (!p.MergeFromString(body, msg)) throw ConfigError(where + ": field " + dotted + ": " + err.message);
      }
      continue;
    }
    if (!last) {
      if (f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE || f->is_repeated())
        throw ConfigError(where + ": '" + dotted + "' is not a message; it has no field '" + comps[i + 1] + "'");
      msg = r->MutableMessage(msg, f);
      continue;
    }
    std::string text;
    if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      std::string body = value;
      if (body.empty() || body.front() != '{') body = "{ " + body + " }";
      if (f->is_repeated()) throw ConfigError(where + ": '" + dotted + "' is a list of messages; set one element's field, e.g. " + dotted + "[NAME].FIELD=VALUE");
      r->ClearField(msg, f);
      text = name + " " + body;
    } else {
      if (f->is_repeated()) r->ClearField(msg, f);
      text = name + ": " + ValueText(f, value);
    }
    FirstError err;
    pb::TextFormat::Parser p;
    p.RecordErrorsTo(&err);
    if (!p.MergeFromString(text, msg)) throw ConfigError(where + ": field " + dotted + ": " + err.message);
  }
  locator->MarkOverridden(dotted, assignment);
}

}  // namespace shardrec::config

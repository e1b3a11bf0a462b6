#include "ps/auth_token.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace shardrec::ps {
namespace {

std::string Trim(std::string s) {
  const char* ws = " \t\r\n";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

}  // namespace

PsToken LoadPsToken(const std::string& token_file) {
  PsToken t;
  if (!token_file.empty()) {
    std::ifstream in(token_file, std::ios::binary);
    if (!in) throw UserError("cannot read the PS token file " + token_file);
    std::ostringstream s;
    s << in.rdbuf();
    t.value = Trim(s.str());
    if (t.value.empty()) throw UserError("the PS token file " + token_file + " is empty");
    if (t.value.find_first_of("\r\n") != std::string::npos)
      throw UserError("the PS token file " + token_file + " holds more than one line");
    t.source = "file " + token_file;
    struct stat st {};
    if (::stat(token_file.c_str(), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
      t.warning = "the PS token file " + token_file + " is accessible by group or others (chmod 600 it)";
    return t;
  }
  if (const char* env = std::getenv(kPsTokenEnv)) {
    t.value = Trim(env);
    if (!t.value.empty()) {
      t.source = std::string("$") + kPsTokenEnv;
      return t;
    }
  }
  t.source = "none";
  return t;
}

std::string BearerHeader(std::string_view token) { return "Bearer " + std::string(token); }

bool BearerMatches(std::string_view header, std::string_view token) {
  const std::string expected = BearerHeader(token);
  // Constant time in the content; the length (of a secret of the operator's choosing) may leak.
  unsigned char diff = header.size() == expected.size() ? 0 : 1;
  const size_t n = expected.size();
  for (size_t i = 0; i < n; ++i) {
    const unsigned char h = i < header.size() ? static_cast<unsigned char>(header[i]) : 0;
    diff |= static_cast<unsigned char>(h ^ static_cast<unsigned char>(expected[i]));
  }
  return diff == 0;
}

}  // namespace shardrec::ps

#pragma once
// Shared helpers for the GoogleTest suite.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>

namespace shardrec::testing {

// The project's shared/ folder (real sample data), or "" when this checkout has none.
// $SHARDREC_SHARED_DIR overrides the default <repo>/../shared.
inline std::string SharedDir() {
  if (const char* env = std::getenv("SHARDREC_SHARED_DIR")) return env;
  std::filesystem::path p = std::filesystem::path(SHARDREC_SOURCE_DIR) / ".." / "shared";
  return std::filesystem::exists(p / "data") ? std::filesystem::canonical(p).string() : "";
}

inline std::string SamplesDir() {
  std::string s = SharedDir();
  return s.empty() ? "" : s + "/data/rechub-samples";
}

// A fresh temporary directory for one test.
inline std::string TempDir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("shardrec-test-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

// The feature block of a Criteo-like job on `synthetic { kind: CTR }` data: I1..I13 dense with the
// log transform, C1..C26 sparse with tables of their own; 39 lines, one feature each.
inline std::string CriteoLikeFeatures() {
  std::string s;
  for (int i = 1; i <= 13; ++i) s += "features { name: \"I" + std::to_string(i) + "\" type: DENSE transform: LOG }\n";
  for (int i = 1; i <= 26; ++i) s += "features { name: \"C" + std::to_string(i) + "\" }\n";
  return s;
}

}  // namespace shardrec::testing

// Skips the current test, with a message, when the shared sample data is absent.
#define SHARDREC_REQUIRE_SAMPLES()                                                           \
  do {                                                                                       \
    if (::shardrec::testing::SamplesDir().empty())                                           \
      GTEST_SKIP() << "needs ../shared/data/rechub-samples (absent in this checkout)";       \
  } while (0)

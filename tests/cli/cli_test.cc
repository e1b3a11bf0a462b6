// The shardrec binary as a user runs it: exit codes, error messages, gen-data output.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sys/wait.h>

#include "test_util.h"

namespace {

namespace fs = std::filesystem;

struct Result {
  int code;
  std::string output;
};

Result RunShardrec(const std::string& args) {
  std::string cmd = std::string(SHARDREC_BINARY_DIR) + "/shardrec " + args + " 2>&1";
  Result r{-1, ""};
  FILE* p = popen(cmd.c_str(), "r");
  std::array<char, 4096> buf;
  while (p && fgets(buf.data(), buf.size(), p)) r.output += buf.data();
  int status = p ? pclose(p) : -1;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

TEST(Cli, BadConfigExitsTwoNamingFileLineAndField) {
  std::string dir = shardrec::testing::TempDir("cli-bad");
  std::ofstream(dir + "/bad.pbtxt") << "name: \"x\"\n"
                                       "data { synthetic { rows: 100 } }\n"
                                       "features { name: \"C1\" table: \"missing\" }\n"
                                       "model { deepfm { } }\n";
  Result r = RunShardrec("train " + dir + "/bad.pbtxt --output-dir " + dir + "/out");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find(dir + "/bad.pbtxt:3:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("features[C1].table"), std::string::npos) << r.output;

  r = RunShardrec("validate " + dir + "/bad.pbtxt --set features[C1].table=C1");
  EXPECT_EQ(r.code, 2) << r.output;  // still unknown: no table C1 is declared
  fs::remove_all(dir);
}

TEST(Cli, ValidateAcceptsShippedConfigWithOverrides) {
  Result r = RunShardrec(std::string("validate ") + SHARDREC_SOURCE_DIR + "/configs/deepfm.pbtxt --set trainer.batch_size=4096");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("batch_size: 4096"), std::string::npos) << r.output;
}

TEST(Cli, GenDataWritesThreeSplitsAndRejectsUnknownKind) {
  std::string dir = shardrec::testing::TempDir("cli-gen");
  Result r = RunShardrec("gen-data ctr --rows 500 --seed 4 --out " + dir);
  EXPECT_EQ(r.code, 0) << r.output;
  for (const char* f : {"train.csv", "validation.csv", "test.csv"}) EXPECT_TRUE(fs::exists(dir + "/" + f)) << f;
  r = RunShardrec("gen-data movies --rows 10 --out " + dir);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("ctr"), std::string::npos) << r.output;  // lists the valid kinds
  fs::remove_all(dir);
}

TEST(Cli, BadDataNamesFileAndLine) {
  std::string dir = shardrec::testing::TempDir("cli-data");
  std::ofstream(dir + "/train.csv") << "label,I1,C1\n1,3,a\n0,4,b\n1,notanumber,c\n";
  std::ofstream(dir + "/job.pbtxt") << "data { files { train: \"" << dir << "/train.csv\" } validation_fraction: 0 test_fraction: 0 }\n"
                                       "features { name: \"I1\" type: DENSE }\nfeatures { name: \"C1\" }\n"
                                       "model { deepfm { } }\ntrainer { progress: LINES }\n";
  Result r = RunShardrec("train " + dir + "/job.pbtxt --output-dir " + dir + "/out");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("train.csv:4"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("notanumber"), std::string::npos) << r.output;
  // Where the config says so, the line is skipped and counted instead.
  r = RunShardrec("train " + dir + "/job.pbtxt --output-dir " + dir + "/out --set data.skip_bad_lines=true");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("1 malformed lines skipped"), std::string::npos) << r.output;
  fs::remove_all(dir);
}

}  // namespace

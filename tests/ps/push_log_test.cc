// The push log: records round-trip, and a record cut short or damaged ends the readable log.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "ps/push_log.h"
#include "ps_test_util.h"

namespace shardrec::ps {
namespace {

namespace fs = std::filesystem;

TEST(PushLog, Crc32cKnownValues) {
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);  // the CRC-32C check value
  EXPECT_EQ(Crc32c("", 0), 0u);
  std::vector<char> big(1000);
  std::iota(big.begin(), big.end(), 0);
  // Continuing a CRC equals computing it at once.
  EXPECT_EQ(Crc32c(big.data() + 300, 700, Crc32c(big.data(), 300)), Crc32c(big.data(), 1000));
}

// Writes records 1..n (record s: table s % 3, s ids, dim 4) in scrambled positions.
std::string WriteLog(const std::string& dir, int n) {
  const std::string path = PushLogPath(dir, 7);
  PushLogWriter w(path, /*sync=*/false);
  for (int s = 1; s <= n; ++s) {
    std::vector<int64_t> ids(s), pos(s);
    std::vector<float> grads(s * 4);
    for (int i = 0; i < s; ++i) {
      ids[i] = -1000 * s + i;
      pos[i] = s - 1 - i;  // reversed: the record holds ids in position order
      for (int j = 0; j < 4; ++j) grads[i * 4 + j] = 0.5f * s + i + 0.01f * j;
    }
    w.Append(s, s % 3, 4, ids.data(), pos.data(), s, grads.data());
  }
  EXPECT_EQ(static_cast<int64_t>(fs::file_size(path)), w.bytes());
  return path;
}

TEST(PushLog, RecordsRoundTrip) {
  const testing::ScopedTempDir dir("pushlog-rt");
  const std::string path = WriteLog(dir, 5);
  int seen = 0;
  const auto r = ReadPushLog(path, [&](const PushRecord& rec) {
    ++seen;
    const int s = seen;
    EXPECT_EQ(rec.seq, static_cast<uint64_t>(s));
    EXPECT_EQ(rec.table, static_cast<uint32_t>(s % 3));
    EXPECT_EQ(rec.dim, 4u);
    ASSERT_EQ(rec.ids.size(), static_cast<size_t>(s));
    for (int k = 0; k < s; ++k) {
      const int i = s - 1 - k;
      EXPECT_EQ(rec.ids[k], -1000 * s + i);
      for (int j = 0; j < 4; ++j) EXPECT_EQ(rec.grads[k * 4 + j], 0.5f * s + i + 0.01f * j);
    }
  });
  EXPECT_EQ(seen, 5);
  EXPECT_EQ(r.records, 5);
  EXPECT_EQ(r.valid_bytes, r.file_bytes);
  const auto logs = ListPushLogs(dir);
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_EQ(logs[0].first, 7u);
}

TEST(PushLog, TornOrDamagedTailEndsTheLog) {
  const testing::ScopedTempDir dir("pushlog-torn");
  const std::string path = WriteLog(dir, 4);
  const auto full = ReadPushLog(path, [](const PushRecord&) {});
  int64_t end3 = 0;
  {
    const testing::ScopedTempDir dir3("pushlog-torn3");
    const std::string p3 = WriteLog(dir3, 3);
    end3 = static_cast<int64_t>(fs::file_size(p3));
  }
  // Every cut inside the last record leaves exactly the first three.
  for (int64_t cut = end3 + 1; cut < full.file_bytes; cut += 7) {
    const std::string torn = dir.path() + "/torn.log";
    fs::copy_file(path, torn, fs::copy_options::overwrite_existing);
    fs::resize_file(torn, cut);
    const auto r = ReadPushLog(torn, [](const PushRecord&) {});
    EXPECT_EQ(r.records, 3) << "cut at " << cut;
    EXPECT_EQ(r.valid_bytes, end3);
    EXPECT_EQ(r.file_bytes, cut);
  }
  // A flipped bit in the last record's grads: the crc catches it.
  const std::string bad = dir.path() + "/bad.log";
  fs::copy_file(path, bad, fs::copy_options::overwrite_existing);
  {
    std::fstream f(bad, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(full.file_bytes - 3);
    char c;
    f.get(c);
    f.seekp(full.file_bytes - 3);
    f.put(static_cast<char>(c ^ 0x10));
  }
  const auto r = ReadPushLog(bad, [](const PushRecord&) {});
  EXPECT_EQ(r.records, 3);
  EXPECT_EQ(r.valid_bytes, end3);
}

}  // namespace
}  // namespace shardrec::ps

#include "ps/push_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <system_error>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace shardrec::ps {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'S', 'R', 'P', 'U', 'S', 'H', 'L', '2'};
constexpr size_t kRecordHeader = 8;               // u32 body_bytes, u32 crc
constexpr size_t kBodyHeader = 8 + 4 + 4 + 8 + 8 + 8;  // seq, table, dim, n, client, request_seq
constexpr const char* kPrefix = "pushlog-";
constexpr const char* kSuffix = ".log";

std::string ErrnoText() { return std::error_code(errno, std::generic_category()).message(); }

std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}

uint32_t Crc32cSoftware(uint32_t c, const uint8_t* p, size_t n) {
  static const std::array<uint32_t, 256> table = MakeCrcTable();
  while (n--) c = table[(c ^ *p++) & 0xff] ^ (c >> 8);
  return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t Crc32cSse42(uint32_t c, const uint8_t* p, size_t n) {
  uint64_t c64 = c;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c64 = _mm_crc32_u64(c64, v);
  }
  c = static_cast<uint32_t>(c64);
  while (n--) c = _mm_crc32_u8(c, *p++);
  return c;
}
const bool kHaveSse42 = __builtin_cpu_supports("sse4.2");
#endif

template <typename T>
void Put(char*& p, T v) {
  std::memcpy(p, &v, sizeof(T));
  p += sizeof(T);
}

template <typename T>
T Get(const char*& p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  p += sizeof(T);
  return v;
}

}  // namespace

uint32_t Crc32c(const void* data, size_t n, uint32_t crc) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint32_t c = ~crc;
#if defined(__x86_64__)
  if (kHaveSse42) return ~Crc32cSse42(c, p, n);
#endif
  return ~Crc32cSoftware(c, p, n);
}

PushLogWriter::PushLogWriter(std::string path, bool sync) : path_(std::move(path)), sync_(sync) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error("push log " + path_ + ": cannot create: " + ErrnoText());
  WriteAll(kMagic, sizeof(kMagic));
  bytes_ = sizeof(kMagic);
  if (sync_) {
    if (::fdatasync(fd_) != 0) throw std::runtime_error("push log " + path_ + ": fdatasync failed: " + ErrnoText());
    // The new file's directory entry must survive a machine crash too.
    const std::string dir = fs::path(path_).parent_path().string();
    const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    const bool ok = dfd >= 0 && ::fsync(dfd) == 0;
    if (dfd >= 0) ::close(dfd);
    if (!ok) throw std::runtime_error("push log " + path_ + ": cannot sync its directory: " + ErrnoText());
  }
}

PushLogWriter::~PushLogWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void PushLogWriter::WriteAll(const char* data, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd_, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      const std::string why = ErrnoText();
      // Undo a partial record so that later records stay readable.
      if (::ftruncate(fd_, bytes_) != 0 || ::lseek(fd_, bytes_, SEEK_SET) != bytes_) broken_ = true;
      throw std::runtime_error("push log " + path_ + ": write failed: " + why);
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
}

void PushLogWriter::Append(uint64_t seq, uint32_t table, int dim, const int64_t* ids,
                           const int64_t* positions, int64_t count, const float* grads, uint64_t client,
                           uint64_t request_seq) {
  if (broken_) throw std::runtime_error("push log " + path_ + ": unusable after an earlier write failure");
  const size_t row_bytes = sizeof(float) * dim;
  const size_t body = kBodyHeader + count * (sizeof(int64_t) + row_bytes);
  buf_.resize(kRecordHeader + body);
  char* p = buf_.data() + kRecordHeader;
  Put<uint64_t>(p, seq);
  Put<uint32_t>(p, table);
  Put<uint32_t>(p, static_cast<uint32_t>(dim));
  Put<uint64_t>(p, static_cast<uint64_t>(count));
  Put<uint64_t>(p, client);
  Put<uint64_t>(p, request_seq);
  for (int64_t k = 0; k < count; ++k) Put<int64_t>(p, ids[positions[k]]);
  for (int64_t k = 0; k < count; ++k, p += row_bytes)
    std::memcpy(p, grads + positions[k] * dim, row_bytes);
  char* h = buf_.data();
  Put<uint32_t>(h, static_cast<uint32_t>(body));
  Put<uint32_t>(h, Crc32c(buf_.data() + kRecordHeader, body));
  WriteAll(buf_.data(), buf_.size());
  if (sync_ && ::fdatasync(fd_) != 0) {
    const std::string why = ErrnoText();
    broken_ = true;  // the page cache may hold the record or not: nothing can be promised
    throw std::runtime_error("push log " + path_ + ": fdatasync failed: " + why);
  }
  bytes_ += static_cast<int64_t>(buf_.size());
}

PushLogReadResult ReadPushLog(const std::string& path, const std::function<void(const PushRecord&)>& fn) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw std::runtime_error("push log " + path + ": cannot open: " + ErrnoText());
  PushLogReadResult r;
  std::error_code ec;
  r.file_bytes = static_cast<int64_t>(fs::file_size(path, ec));
  if (ec) throw std::runtime_error("push log " + path + ": " + ec.message());
  char magic[sizeof(kMagic)];
  const size_t got = std::fread(magic, 1, sizeof(magic), f.get());
  if (got < sizeof(magic)) return r;  // torn at creation: no records
  if (std::memcmp(magic, kMagic, sizeof(kMagic)) != 0)
    throw std::runtime_error("push log " + path + ": not a ShardRec push log (bad magic)");
  r.valid_bytes = sizeof(kMagic);
  std::vector<char> body;
  PushRecord rec;
  for (;;) {
    char header[kRecordHeader];
    if (std::fread(header, 1, kRecordHeader, f.get()) != kRecordHeader) break;
    const char* h = header;
    const uint32_t body_bytes = Get<uint32_t>(h);
    const uint32_t crc = Get<uint32_t>(h);
    if (body_bytes < kBodyHeader || r.valid_bytes + int64_t{kRecordHeader} + body_bytes > r.file_bytes) break;
    body.resize(body_bytes);
    if (std::fread(body.data(), 1, body_bytes, f.get()) != body_bytes) break;
    if (Crc32c(body.data(), body_bytes) != crc) break;
    const char* p = body.data();
    rec.seq = Get<uint64_t>(p);
    rec.table = Get<uint32_t>(p);
    rec.dim = Get<uint32_t>(p);
    const uint64_t n = Get<uint64_t>(p);
    rec.client = Get<uint64_t>(p);
    rec.request_seq = Get<uint64_t>(p);
    if (body_bytes != kBodyHeader + n * (sizeof(int64_t) + sizeof(float) * rec.dim)) break;
    rec.ids.resize(n);
    rec.grads.resize(n * rec.dim);
    std::memcpy(rec.ids.data(), p, n * sizeof(int64_t));
    p += n * sizeof(int64_t);
    std::memcpy(rec.grads.data(), p, rec.grads.size() * sizeof(float));
    fn(rec);
    r.valid_bytes += kRecordHeader + body_bytes;
    ++r.records;
  }
  return r;
}

std::string PushLogPath(const std::string& dir, uint64_t generation) {
  char name[64];
  std::snprintf(name, sizeof(name), "%s%012llu%s", kPrefix, static_cast<unsigned long long>(generation), kSuffix);
  return (fs::path(dir) / name).string();
}

std::vector<std::pair<uint64_t, std::string>> ListPushLogs(const std::string& dir) {
  std::vector<std::pair<uint64_t, std::string>> logs;
  const std::string prefix = kPrefix, suffix = kSuffix;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.size() <= prefix.size() + suffix.size() || name.compare(0, prefix.size(), prefix) != 0 ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
    if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
    logs.emplace_back(std::stoull(digits), e.path().string());
  }
  std::sort(logs.begin(), logs.end());
  return logs;
}

}  // namespace shardrec::ps

#pragma once
// The push log of one shard: every push is appended (write(), optionally fdatasync) before it is
// acknowledged, so rows changed since the last flush to RocksDB can be rebuilt after a crash.
// One file per generation, <dir>/pushlog-<generation>.log; ShardStore rotates to a new
// generation when it flushes and deletes the older files once the flush is durable.
//
// File: 8-byte magic, then records. Record: u32 body_bytes, u32 crc32c(body), body =
// {u64 seq, u32 table, u32 dim, u64 n, u64 client, u64 request_seq, i64 ids[n],
// f32 grads[n * dim]} (host byte order). client/request_seq name a remote client's push (0 when
// untagged), so that the duplicate check of retried pushes survives a restart.
// A record cut short by a crash (length past the end of the file, or a crc mismatch) ends the
// readable part of a file: it was never acknowledged.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace shardrec::ps {

// CRC-32C (Castagnoli) of data[n], continuing from `crc` (0 to start). SSE4.2 when available.
uint32_t Crc32c(const void* data, size_t n, uint32_t crc = 0);

class PushLogWriter {
 public:
  // Creates (truncating) the log file `path`. With `sync`, every Append is fdatasync'ed.
  PushLogWriter(std::string path, bool sync);
  ~PushLogWriter();
  PushLogWriter(const PushLogWriter&) = delete;
  PushLogWriter& operator=(const PushLogWriter&) = delete;

  // Appends one push: for k < count, i = positions[k]: ids[i] and grads[i * dim, (i + 1) * dim).
  // Returns once the record is written (and synced with `sync`). On failure throws
  // std::runtime_error and leaves the file as it was before the call.
  void Append(uint64_t seq, uint32_t table, int dim, const int64_t* ids, const int64_t* positions,
              int64_t count, const float* grads, uint64_t client = 0, uint64_t request_seq = 0);

  int64_t bytes() const { return bytes_; }
  const std::string& path() const { return path_; }

 private:
  void WriteAll(const char* data, size_t n);

  std::string path_;
  bool sync_;
  int fd_ = -1;
  int64_t bytes_ = 0;
  bool broken_ = false;  // a failed write could not be undone: refuse further appends
  std::vector<char> buf_;
};

struct PushRecord {
  uint64_t seq = 0;
  uint32_t table = 0;
  uint32_t dim = 0;
  uint64_t client = 0, request_seq = 0;
  std::vector<int64_t> ids;
  std::vector<float> grads;  // ids.size() * dim
};

struct PushLogReadResult {
  int64_t records = 0;
  int64_t valid_bytes = 0;  // end of the last complete record (or of the magic)
  int64_t file_bytes = 0;   // > valid_bytes: a torn or corrupt tail follows
};

// Calls `fn` on each complete record of the log file `path`, in order, stopping at a torn tail.
// Throws std::runtime_error when the file cannot be read or is not a push log.
PushLogReadResult ReadPushLog(const std::string& path, const std::function<void(const PushRecord&)>& fn);

// Log files of `dir` as (generation, path), oldest first.
std::vector<std::pair<uint64_t, std::string>> ListPushLogs(const std::string& dir);
std::string PushLogPath(const std::string& dir, uint64_t generation);

}  // namespace shardrec::ps

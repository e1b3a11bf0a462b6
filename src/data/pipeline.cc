// The pipeline's threads, in data-flow order:
//   reader     cuts the files into chunks of whole records (with their line numbers),
//   parsers    (options.threads) turn chunks into columnar rows, in any order,
//   assembler  takes parsed chunks back in chunk order, applies bad-line accounting, the shuffle
//              buffer and batching, and queues finished batches (at most queue_batches),
//   consumer   Next() swaps a queued batch into the caller's and recycles the caller's buffers.
// Chunk boundaries depend only on the file bytes, and everything order-dependent happens on the
// assembler, so the output is the same for every thread count and timing. At most
// max_in_flight chunks exist between the reader and the assembler, which bounds memory. Errors
// in the data travel in the stream and surface from Next() at their position.
#include "data/pipeline.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "common/error.h"
#include "data/batch_builder.h"
#include "data/chunk_parser.h"
#include "data/csv_parser.h"
#include "data/file_layout.h"
#include "data/shuffle_buffer.h"

namespace shardrec::data {
namespace {

constexpr size_t kChunkBytes = 256 * 1024;
constexpr size_t kMaxRecordBytes = 64 * 1024 * 1024;

char DefaultDelimiter(FileFormat format) { return format == FileFormat::kCsv ? ',' : '\t'; }

void CheckSchema(const FeatureSchema& schema) {
  for (const FeatureSpec& f : schema.features) {
    const bool dense = f.kind == FeatureKind::kDense;
    const int index = dense ? f.dense_index : f.sparse_index;
    const int limit = dense ? schema.num_dense : schema.num_sparse;
    if (index < 0 || index >= limit) {
      throw UserError("feature '" + f.name + "': " + (dense ? "dense_index " : "sparse_index ") + std::to_string(index) +
                      " outside [0, " + std::to_string(limit) + ")");
    }
  }
}

}  // namespace

struct BatchPipeline::Impl {
  Impl(const FeatureSchema& s, std::vector<std::string> f, PipelineOptions o)
      : schema(s), files(std::move(f)), options(std::move(o)) {}

  void Start();
  void Stop();
  void ReaderLoop();
  void ParserLoop();
  void AssemblerLoop();
  bool Next(Batch* out);

  // Helpers of the loops; all return false once the pipeline is stopping.
  std::unique_ptr<Chunk> AcquireChunk();
  void PushChunk(std::unique_ptr<Chunk> chunk);
  bool Consume(const ParsedChunk& chunk, Batch* current, ShuffleBuffer* shuffle);
  bool EmitRows(const Batch& src, int64_t begin, int64_t end, Batch* current, ShuffleBuffer* shuffle);
  bool PushBatch(Batch* current);
  bool PushError(std::exception_ptr error);
  void Fail(std::exception_ptr error);
  void WakeAll();

  const FeatureSchema schema;
  const std::vector<std::string> files;
  const PipelineOptions options;
  std::vector<std::unique_ptr<FileLayout>> layouts;
  int max_in_flight = 4;

  std::mutex mu;
  std::condition_variable reader_cv, parser_cv, assembler_cv, consumer_cv, space_cv;
  bool stopping = false;
  std::exception_ptr fatal;  // an unexpected failure on a background thread

  // reader -> parsers
  std::deque<std::unique_ptr<Chunk>> raw;
  std::vector<std::unique_ptr<Chunk>> chunk_pool;
  int in_flight = 0;  // chunks handed out by the reader and not yet taken by the assembler
  bool reader_done = false;
  int64_t total_chunks = 0;

  // parsers -> assembler, indexed by seq % max_in_flight
  std::vector<std::unique_ptr<ParsedChunk>> ready;
  std::vector<std::unique_ptr<ParsedChunk>> parsed_pool;

  // assembler -> consumer
  struct Item {
    Batch batch;
    std::exception_ptr error;
  };
  std::deque<Item> out;
  std::vector<Batch> out_pool;
  bool out_done = false;

  std::exception_ptr sticky_error;  // consumer side: once thrown, every later Next() throws it
  std::atomic<int64_t> rows_read{0};
  std::atomic<int64_t> bad_lines{0};
  std::vector<std::thread> threads;
};

void BatchPipeline::Impl::Start() {
  max_in_flight = 2 * std::max(options.threads, 1) + 2;
  ready.resize(static_cast<size_t>(max_in_flight));
  threads.emplace_back([this] { ReaderLoop(); });
  for (int i = 0; i < std::max(options.threads, 1); ++i) threads.emplace_back([this] { ParserLoop(); });
  threads.emplace_back([this] { AssemblerLoop(); });
}

void BatchPipeline::Impl::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu);
    stopping = true;
  }
  WakeAll();
  for (std::thread& t : threads) t.join();
  threads.clear();
}

void BatchPipeline::Impl::Fail(std::exception_ptr error) {
  {
    std::lock_guard<std::mutex> lock(mu);
    if (!fatal) fatal = error;
    stopping = true;
  }
  WakeAll();
}

// Every thread waiting on the pipeline re-checks `stopping` / `fatal`.
void BatchPipeline::Impl::WakeAll() {
  reader_cv.notify_all();
  parser_cv.notify_all();
  assembler_cv.notify_all();
  consumer_cv.notify_all();
  space_cv.notify_all();
}

// ----------------------------------------------------------------------------------------------
// Reader

std::unique_ptr<Chunk> BatchPipeline::Impl::AcquireChunk() {
  std::unique_lock<std::mutex> lock(mu);
  reader_cv.wait(lock, [&] { return stopping || in_flight < max_in_flight; });
  if (stopping) return nullptr;
  ++in_flight;
  std::unique_ptr<Chunk> chunk;
  if (!chunk_pool.empty()) {
    chunk = std::move(chunk_pool.back());
    chunk_pool.pop_back();
  } else {
    chunk = std::make_unique<Chunk>();
  }
  chunk->error = nullptr;
  chunk->text.clear();
  return chunk;
}

void BatchPipeline::Impl::PushChunk(std::unique_ptr<Chunk> chunk) {
  {
    std::lock_guard<std::mutex> lock(mu);
    chunk->seq = total_chunks++;
    raw.push_back(std::move(chunk));
  }
  parser_cv.notify_one();
}

void BatchPipeline::Impl::ReaderLoop() {
  try {
    std::string carry;  // the incomplete record at the end of the last chunk
    for (const std::unique_ptr<FileLayout>& layout : layouts) {
      const std::string& path = layout->path;
      std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
      std::string error;
      if (!f) error = path + ": cannot open: " + std::strerror(errno);
      carry.clear();
      bool skip_header = layout->has_header;
      int64_t line = 1;
      bool eof = false;
      while (!eof || !error.empty()) {
        std::unique_ptr<Chunk> chunk = AcquireChunk();
        if (!chunk) return;
        chunk->layout = layout.get();
        std::string& text = chunk->text;
        text.swap(carry);
        carry.clear();
        size_t cut = 0;
        while (error.empty()) {
          const size_t old = text.size();
          text.resize(old + kChunkBytes);
          const size_t n = std::fread(text.data() + old, 1, kChunkBytes, f.get());
          text.resize(old + n);
          if (n < kChunkBytes) {
            if (std::ferror(f.get())) {
              error = path + ":" + std::to_string(line) + ": read error: " + std::strerror(errno);
              break;
            }
            eof = true;
          }
          cut = eof ? text.size() : CompleteRecordsLength(text.data(), text.size(), layout->delimiter);
          if (cut > 0 || eof) break;
          if (text.size() > kMaxRecordBytes) {
            error = path + ":" + std::to_string(line) + ": a record longer than 64 MiB (an unterminated quote?)";
          }
        }
        if (!error.empty()) {
          // The error takes this chunk's place in the stream; Next() throws it there.
          text.clear();
          chunk->error = std::make_exception_ptr(DataError(error));
          PushChunk(std::move(chunk));
          break;
        }
        carry.assign(text, cut, std::string::npos);
        text.resize(cut);
        if (skip_header) {
          skip_header = false;
          int newlines = 0;
          const char* e = FindRecordEnd(text.data(), text.data() + text.size(), layout->delimiter, &newlines);
          text.erase(0, e ? static_cast<size_t>(e - text.data()) : text.size());
          line += newlines;
        }
        chunk->first_line = line;
        line += std::count(text.begin(), text.end(), '\n');
        PushChunk(std::move(chunk));
      }
      if (!error.empty()) break;
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      reader_done = true;
    }
    parser_cv.notify_all();
    assembler_cv.notify_all();
  } catch (...) {
    Fail(std::current_exception());
  }
}

// ----------------------------------------------------------------------------------------------
// Parsers

void BatchPipeline::Impl::ParserLoop() {
  try {
    ChunkParser parser(schema, options.split, options.skip_bad_lines);
    for (;;) {
      std::unique_ptr<Chunk> chunk;
      std::unique_ptr<ParsedChunk> parsed;
      {
        std::unique_lock<std::mutex> lock(mu);
        parser_cv.wait(lock, [&] { return stopping || !raw.empty() || reader_done; });
        if (stopping || raw.empty()) return;
        chunk = std::move(raw.front());
        raw.pop_front();
        if (!parsed_pool.empty()) {
          parsed = std::move(parsed_pool.back());
          parsed_pool.pop_back();
        }
      }
      if (!parsed) parsed = std::make_unique<ParsedChunk>();
      parsed->seq = chunk->seq;
      PrepareBatch(schema, &parsed->rows);
      parsed->bad_lines.clear();
      parsed->error = chunk->error;
      if (!chunk->error) parser.Parse(chunk.get(), parsed.get());
      {
        std::lock_guard<std::mutex> lock(mu);
        ready[static_cast<size_t>(parsed->seq % max_in_flight)] = std::move(parsed);
        chunk_pool.push_back(std::move(chunk));
      }
      assembler_cv.notify_one();
    }
  } catch (...) {
    Fail(std::current_exception());
  }
}

// ----------------------------------------------------------------------------------------------
// Assembler

bool BatchPipeline::Impl::PushBatch(Batch* current) {
  {
    std::unique_lock<std::mutex> lock(mu);
    space_cv.wait(lock, [&] { return stopping || static_cast<int>(out.size()) < std::max(options.queue_batches, 1); });
    if (stopping) return false;
    out.push_back(Item{std::move(*current), nullptr});
    if (!out_pool.empty()) {
      *current = std::move(out_pool.back());
      out_pool.pop_back();
    } else {
      *current = Batch();
    }
  }
  consumer_cv.notify_one();
  PrepareBatch(schema, current);
  return true;
}

bool BatchPipeline::Impl::PushError(std::exception_ptr error) {
  {
    std::unique_lock<std::mutex> lock(mu);
    space_cv.wait(lock, [&] { return stopping || static_cast<int>(out.size()) < std::max(options.queue_batches, 1); });
    if (stopping) return false;
    out.push_back(Item{Batch(), error});
    out_done = true;
  }
  consumer_cv.notify_all();
  return true;
}

bool BatchPipeline::Impl::EmitRows(const Batch& src, int64_t begin, int64_t end, Batch* current,
                                   ShuffleBuffer* shuffle) {
  if (shuffle) {
    for (int64_t r = begin; r < end; ++r) {
      shuffle->Add(src, r, current);
      if (current->rows == options.batch_size && !PushBatch(current)) return false;
    }
    return true;
  }
  while (begin < end) {
    const int64_t n = std::min(end - begin, options.batch_size - current->rows);
    AppendRows(src, begin, begin + n, current);
    begin += n;
    if (current->rows == options.batch_size && !PushBatch(current)) return false;
  }
  return true;
}

// False when the stream ended here (an error was queued) or the pipeline is stopping.
bool BatchPipeline::Impl::Consume(const ParsedChunk& chunk, Batch* current, ShuffleBuffer* shuffle) {
  int64_t done = 0;
  for (const BadLine& bad : chunk.bad_lines) {
    if (!EmitRows(chunk.rows, done, bad.rows_before, current, shuffle)) return false;
    done = bad.rows_before;
    if (!options.skip_bad_lines) {
      PushError(std::make_exception_ptr(DataError(bad.message)));
      return false;
    }
    const int64_t skipped = bad_lines.fetch_add(1) + 1;
    if (skipped > options.max_bad_lines) {
      PushError(std::make_exception_ptr(DataError(
          bad.message + " (more than max_bad_lines=" + std::to_string(options.max_bad_lines) +
          " bad lines skipped; giving up)")));
      return false;
    }
  }
  if (!EmitRows(chunk.rows, done, chunk.rows.rows, current, shuffle)) return false;
  if (chunk.error) {
    PushError(chunk.error);
    return false;
  }
  return true;
}

void BatchPipeline::Impl::AssemblerLoop() {
  try {
    std::unique_ptr<ShuffleBuffer> shuffle;
    if (options.shuffle_buffer > 0) shuffle = std::make_unique<ShuffleBuffer>(schema, options.shuffle_buffer, options.seed);
    Batch current;
    PrepareBatch(schema, &current);
    for (int64_t next = 0;; ++next) {
      std::unique_ptr<ParsedChunk> parsed;
      {
        std::unique_lock<std::mutex> lock(mu);
        std::unique_ptr<ParsedChunk>& slot = ready[static_cast<size_t>(next % max_in_flight)];
        assembler_cv.wait(lock, [&] { return stopping || slot || (reader_done && next == total_chunks); });
        if (stopping) return;
        if (!slot) break;  // all chunks consumed
        parsed = std::move(slot);
        --in_flight;
      }
      reader_cv.notify_one();
      const bool more = Consume(*parsed, &current, shuffle.get());
      {
        std::lock_guard<std::mutex> lock(mu);
        parsed_pool.push_back(std::move(parsed));
      }
      if (!more) return;
    }
    if (shuffle) {
      while (!shuffle->empty()) {
        shuffle->PopRandom(&current);
        if (current.rows == options.batch_size && !PushBatch(&current)) return;
      }
    }
    if (current.rows > 0 && !options.drop_last && !PushBatch(&current)) return;
    {
      std::lock_guard<std::mutex> lock(mu);
      out_done = true;
    }
    consumer_cv.notify_all();
  } catch (...) {
    Fail(std::current_exception());
  }
}

// ----------------------------------------------------------------------------------------------
// Consumer

bool BatchPipeline::Impl::Next(Batch* batch) {
  if (sticky_error) std::rethrow_exception(sticky_error);
  Item item;
  {
    std::unique_lock<std::mutex> lock(mu);
    consumer_cv.wait(lock, [&] { return fatal || !out.empty() || out_done; });
    if (fatal) {
      sticky_error = fatal;
    } else if (out.empty()) {
      PrepareBatch(schema, batch);
      return false;
    } else {
      item = std::move(out.front());
      out.pop_front();
    }
  }
  if (sticky_error) std::rethrow_exception(sticky_error);
  space_cv.notify_one();
  if (item.error) {
    sticky_error = item.error;
    std::rethrow_exception(sticky_error);
  }
  std::swap(*batch, item.batch);
  rows_read.fetch_add(batch->rows);
  {
    std::lock_guard<std::mutex> lock(mu);
    if (static_cast<int>(out_pool.size()) < 2) out_pool.push_back(std::move(item.batch));
  }
  return true;
}

// ----------------------------------------------------------------------------------------------

BatchPipeline::BatchPipeline(const FeatureSchema& schema, std::vector<std::string> files, PipelineOptions options)
    : impl_(std::make_unique<Impl>(schema, std::move(files), std::move(options))) {
  const PipelineOptions& o = impl_->options;
  if (o.batch_size <= 0) throw UserError("batch_size must be positive, got " + std::to_string(o.batch_size));
  const SplitSpec& s = o.split;
  if (s.validation_fraction < 0 || s.test_fraction < 0 || s.validation_fraction + s.test_fraction > 1) {
    throw UserError("validation_fraction and test_fraction must be >= 0 with a sum <= 1");
  }
  CheckSchema(impl_->schema);
  const char delimiter = o.delimiter != 0 ? o.delimiter : DefaultDelimiter(o.format);
  std::vector<std::string> given = o.column_names;
  if (given.empty() && o.format == FileFormat::kCriteoTsv) given = CriteoColumnNames();
  // Every file's columns are checked here, so a missing column fails before any thread starts.
  for (size_t i = 0; i < impl_->files.size(); ++i) {
    const std::string& path = impl_->files[i];
    const bool has_header = given.empty();
    std::vector<std::string> header;
    if (has_header) {
      header = ReadHeader(path, delimiter);
    } else {
      std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
      if (!f) throw DataError(path + ": cannot open: " + std::strerror(errno));
    }
    impl_->layouts.push_back(std::make_unique<FileLayout>(
        ResolveLayout(impl_->schema, has_header ? header : given, path, static_cast<int>(i), delimiter, has_header)));
  }
  try {
    impl_->Start();
  } catch (...) {
    impl_->Stop();
    throw;
  }
}

BatchPipeline::~BatchPipeline() { impl_->Stop(); }

bool BatchPipeline::Next(Batch* out) { return impl_->Next(out); }

int64_t BatchPipeline::rows_read() const { return impl_->rows_read.load(); }

int64_t BatchPipeline::bad_lines() const { return impl_->bad_lines.load(); }

}  // namespace shardrec::data

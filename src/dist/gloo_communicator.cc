// Gloo backend: TCP pairs between all ranks (full mesh), rendezvous through a gloo FileStore
// directory under a per-run prefix, every store wait and collective bounded by options.timeout.
#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>
#include <signal.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <exception>

#include "common/error.h"
#include "dist/communicator_backends.h"

namespace shardrec::dist {
namespace {

// Debian's gloo (2022-05) FileStore::get() waits with the fixed 30 s Store::kDefaultTimeout and
// ignores the context's timeout; this wrapper makes every wait use ours.
class TimeoutStore : public gloo::rendezvous::Store {
 public:
  TimeoutStore(gloo::rendezvous::Store& inner, std::chrono::milliseconds timeout) : inner_(inner), timeout_(timeout) {}
  void set(const std::string& key, const std::vector<char>& data) override { inner_.set(key, data); }
  std::vector<char> get(const std::string& key) override {
    inner_.wait({key}, timeout_);
    return inner_.get(key);
  }
  void wait(const std::vector<std::string>& keys) override { inner_.wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override { inner_.wait(keys, timeout); }

 private:
  gloo::rendezvous::Store& inner_;
  std::chrono::milliseconds timeout_;
};

// gloo's tcp transport writes with writev(): a write to a peer that died raises SIGPIPE, whose
// default action kills this process before gloo can report the error. Ignore it (only when no
// handler is installed), so the write fails with EPIPE and becomes a CommunicatorError.
void IgnoreSigpipeUnlessHandled() {
  struct sigaction current;
  if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL && !(current.sa_flags & SA_SIGINFO))
    signal(SIGPIPE, SIG_IGN);
}

template <typename T>
void GlooSum(void* c, const void* a, const void* b, size_t n) {
  gloo::sum<T>(c, a, b, n);
}

class GlooCommunicator final : public Communicator {
 public:
  explicit GlooCommunicator(const CommunicatorOptions& o) : rank_(o.rank), size_(o.size), timeout_(o.timeout) {
    if (o.store_dir.empty()) Fail("connect", "store_dir is empty (the gloo backend needs a FileStore directory every rank can see)");
    if (o.store_prefix.empty()) Fail("connect", "store_prefix is empty (pass a prefix unique to this run)");
    struct stat st;
    if (::stat(o.store_dir.c_str(), &st) != 0) Fail("connect", "store_dir '" + o.store_dir + "': " + std::strerror(errno));
    if (!S_ISDIR(st.st_mode)) Fail("connect", "store_dir '" + o.store_dir + "' is not a directory");
    IgnoreSigpipeUnlessHandled();
    try {
      file_store_ = std::make_unique<gloo::rendezvous::FileStore>(o.store_dir);
      prefix_store_ = std::make_unique<gloo::rendezvous::PrefixStore>(o.store_prefix, *file_store_);
      TimeoutStore store(*prefix_store_, timeout_);
      gloo::transport::tcp::attr attr;
      attr.hostname = o.hostname;
      auto device = gloo::transport::tcp::CreateDevice(attr);
      auto context = std::make_shared<gloo::rendezvous::Context>(rank_, size_);
      context->setTimeout(timeout_);
      context->connectFullMesh(store, device);
      context_ = std::move(context);
    } catch (const std::exception& e) {
      Fail("connect (store '" + o.store_dir + "', prefix '" + o.store_prefix + "', timeout " + std::to_string(timeout_.count()) +
               " ms)",
           std::string(e.what()) + " [a peer that never arrived times out here; a reused store directory + prefix fails here too: use a fresh prefix per run]");
    }
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Backend backend() const override { return Backend::kGloo; }

  void AllreduceSum(float* data, size_t n) override { Allreduce(data, n, &GlooSum<float>); }
  void AllreduceSum(double* data, size_t n) override { Allreduce(data, n, &GlooSum<double>); }
  void AllreduceSum(int64_t* data, size_t n) override { Allreduce(data, n, &GlooSum<int64_t>); }

  void Broadcast(float* data, size_t n, int root) override {
    CheckRoot(root, "Broadcast");
    if (n == 0 || size_ == 1) return;
    Run("Broadcast", [&] {
      gloo::BroadcastOptions opts(context_);
      opts.setOutput(data, n);
      opts.setRoot(root);
      opts.setTimeout(timeout_);
      gloo::broadcast(opts);
    });
  }

  void Barrier() override {
    if (size_ == 1) return;
    Run("Barrier", [&] {
      gloo::BarrierOptions opts(context_);
      opts.setTimeout(timeout_);
      gloo::barrier(opts);
    });
  }

  void Allgather(const float* in, size_t n, float* out) override {
    AllgatherBytes(in, n * sizeof(float), out);
  }

  void AllgatherBytes(const void* in, size_t bytes, void* out) override {
    if (bytes == 0) return;
    if (size_ == 1) {
      std::memcpy(out, in, bytes);
      return;
    }
    Run("Allgather", [&] {
      gloo::AllgatherOptions opts(context_);
      opts.setInput(static_cast<char*>(const_cast<void*>(in)), bytes);
      opts.setOutput(static_cast<char*>(out), bytes * size_);
      opts.setTimeout(timeout_);
      gloo::allgather(opts);
    });
  }

 private:
  template <typename T>
  void Allreduce(T* data, size_t n, gloo::AllreduceOptions::Func fn) {
    if (n == 0 || size_ == 1) return;
    Run("AllreduceSum", [&] {
      gloo::AllreduceOptions opts(context_);
      opts.setOutput(data, n);
      opts.setReduceFunction(fn);
      opts.setTimeout(timeout_);
      gloo::allreduce(opts);
    });
  }

  template <typename F>
  void Run(const char* op, F&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      Fail(op, e.what());
    }
  }

  void CheckRoot(int root, const char* op) {
    if (root < 0 || root >= size_) throw UserError(CommErrorMessage(Backend::kGloo, rank_, size_, std::string(op) + ": root " + std::to_string(root) + " is out of range"));
  }

  [[noreturn]] void Fail(const std::string& op, const std::string& what) {
    ThrowCommError(Backend::kGloo, rank_, size_, op + ": " + what);
  }

  int rank_, size_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<gloo::rendezvous::FileStore> file_store_;
  std::unique_ptr<gloo::rendezvous::PrefixStore> prefix_store_;
  std::shared_ptr<gloo::Context> context_;
};

}  // namespace

std::unique_ptr<Communicator> MakeGlooCommunicator(const CommunicatorOptions& options) {
  return std::make_unique<GlooCommunicator>(options);
}

}  // namespace shardrec::dist

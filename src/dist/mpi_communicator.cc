// MPI backend: MPI_COMM_WORLD of an mpirun-launched job. Initializes MPI (MPI_THREAD_MULTIPLE)
// unless the program already did, and finalizes at exit what it initialized. Errors return codes
// (MPI_ERRORS_RETURN on the communicator it uses) and become CommunicatorError. MPI has no
// timeouts: a rank that never arrives or dies is handled by mpirun, which aborts the job.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "common/error.h"
#include "dist/communicator_backends.h"

namespace shardrec::dist {
namespace {

std::string MpiErrorString(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(buf, len);
}

void EnsureMpiInitialized() {
  static std::once_flag once;
  std::call_once(once, [] {
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (finalized) ThrowCommError(Backend::kMpi, -1, -1, "MPI was already finalized in this process");
    if (initialized) return;
    int provided = 0;
    int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
    if (rc != MPI_SUCCESS) ThrowCommError(Backend::kMpi, -1, -1, "MPI_Init_thread: " + MpiErrorString(rc));
    // provided < MPI_THREAD_MULTIPLE is still usable when one thread at a time calls MPI (the
    // trainer's communication thread); Open MPI 4.1 grants MULTIPLE here.
    std::atexit([] {
      int fin = 0;
      MPI_Finalized(&fin);
      if (!fin) MPI_Finalize();
    });
  });
}

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(const CommunicatorOptions& o) {
    EnsureMpiInitialized();
    // A private duplicate (or split): our error handler and traffic don't touch the application's
    // WORLD.
    int rc = o.mpi_color < 0 ? MPI_Comm_dup(MPI_COMM_WORLD, &comm_) : MPI_Comm_split(MPI_COMM_WORLD, o.mpi_color, 0, &comm_);
    if (rc != MPI_SUCCESS)
      ThrowCommError(Backend::kMpi, o.rank, o.size, std::string(o.mpi_color < 0 ? "MPI_Comm_dup: " : "MPI_Comm_split: ") + MpiErrorString(rc));
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    if ((o.rank >= 0 && o.rank != rank_) || (o.size >= 0 && o.size != size_)) {
      std::string what = "options say rank " + std::to_string(o.rank) + " of " + std::to_string(o.size) +
                         " but MPI_COMM_WORLD says rank " + std::to_string(rank_) + " of " + std::to_string(size_);
      MPI_Comm_free(&comm_);
      ThrowCommError(Backend::kMpi, rank_, size_, what);
    }
  }
  ~MpiCommunicator() override {
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Backend backend() const override { return Backend::kMpi; }

  void AllreduceSum(float* data, size_t n) override { Allreduce(data, n, MPI_FLOAT); }
  void AllreduceSum(double* data, size_t n) override { Allreduce(data, n, MPI_DOUBLE); }
  void AllreduceSum(int64_t* data, size_t n) override { Allreduce(data, n, MPI_INT64_T); }

  void Broadcast(float* data, size_t n, int root) override {
    if (root < 0 || root >= size_) throw UserError(CommErrorMessage(Backend::kMpi, rank_, size_, "Broadcast: root " + std::to_string(root) + " is out of range"));
    ForChunks(n, [&](size_t off, int count) { Check("MPI_Bcast", MPI_Bcast(data + off, count, MPI_FLOAT, root, comm_)); });
  }

  // Open MPI's blocking calls spin on a core while they wait; a barrier may wait long (PS ranks
  // wait in one for the whole run), so it polls with sleeps instead.
  void Barrier() override {
    MPI_Request req;
    Check("MPI_Ibarrier", MPI_Ibarrier(comm_, &req));
    int done = 0;
    auto pause = std::chrono::microseconds(20);
    for (;;) {
      Check("MPI_Test", MPI_Test(&req, &done, MPI_STATUS_IGNORE));
      if (done) return;
      std::this_thread::sleep_for(pause);
      pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(50));
    }
  }

  void Allgather(const float* in, size_t n, float* out) override { AllgatherBytes(in, n * sizeof(float), out); }

  void AllgatherBytes(const void* in, size_t bytes, void* out) override {
    if (bytes > static_cast<size_t>(INT32_MAX)) ThrowCommError(Backend::kMpi, rank_, size_, "Allgather: more than 2^31-1 bytes per rank");
    Check("MPI_Allgather", MPI_Allgather(in, static_cast<int>(bytes), MPI_BYTE, out, static_cast<int>(bytes), MPI_BYTE, comm_));
  }

 private:
  // MPI counts are int: split larger buffers.
  template <typename F>
  static void ForChunks(size_t n, F&& f) {
    constexpr size_t kMax = 1u << 30;
    for (size_t off = 0; off < n; off += kMax) f(off, static_cast<int>(std::min(kMax, n - off)));
  }

  template <typename T>
  void Allreduce(T* data, size_t n, MPI_Datatype type) {
    ForChunks(n, [&](size_t off, int count) {
      Check("MPI_Allreduce", MPI_Allreduce(MPI_IN_PLACE, data + off, count, type, MPI_SUM, comm_));
    });
  }

  void Check(const char* op, int rc) {
    if (rc != MPI_SUCCESS) ThrowCommError(Backend::kMpi, rank_, size_, std::string(op) + ": " + MpiErrorString(rc));
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = -1, size_ = -1;
};

}  // namespace

std::unique_ptr<Communicator> MakeMpiCommunicator(const CommunicatorOptions& options) {
  return std::make_unique<MpiCommunicator>(options);
}

}  // namespace shardrec::dist

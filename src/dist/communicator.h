#pragma once
// Collective communication between the trainer processes of one job: dense-gradient allreduce,
// parameter broadcast, allgather of metrics. One interface, three backends:
//   gloo  - TCP between processes, rendezvous through a gloo FileStore directory (CPU buffers);
//   mpi   - MPI_COMM_WORLD of an mpirun-launched job (CPU buffers);
//   nccl  - GPU collectives (only when built with SHARDREC_HAVE_NCCL), ncclUniqueId exchanged
//           through a gloo FileStore or MPI.
// No backend headers here: gloo, MPI, CUDA and NCCL stay in the .cc files.
//
// Every call is collective: all ranks call it in the same order with the same sizes. Failures
// (a peer that never arrives, a timeout, a peer that died) throw CommunicatorError with the backend
// and rank in the message; nothing hangs past `timeout` on gloo (see the limits per backend below).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

namespace shardrec::dist {

enum class Backend { kGloo, kMpi, kNccl };

// "gloo" | "mpi" | "nccl"; throws UserError otherwise.
Backend ParseBackend(const std::string& name);
const char* BackendName(Backend backend);

// Message form: "<backend> backend, rank R of N: <what>".
class CommunicatorError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct CommunicatorOptions {
  Backend backend = Backend::kGloo;
  // Gloo and NCCL: required, 0 <= rank < size. MPI: -1 takes them from MPI_COMM_WORLD; other
  // values must match it.
  int rank = -1;
  int size = -1;

  // Gloo rendezvous (also NCCL's when nccl_bootstrap is kGloo): a directory every rank can see
  // (one machine or a shared filesystem) and a prefix unique to this run. All ranks must pass the
  // same directory and prefix; a directory/prefix pair that was used before is an error, so the
  // launcher should pass a run id (e.g. "<job>-<start time>") or a fresh directory.
  std::string store_dir;
  std::string store_prefix = "shardrec";
  // Address this rank's gloo TCP device binds to and advertises to its peers. The loopback default
  // suits one machine; multi-machine jobs must pass an address reachable from the other hosts.
  std::string hostname = "127.0.0.1";

  // Rendezvous and per-operation timeout (gloo store waits, gloo collectives). MPI has no
  // timeouts (mpirun tears the job down when a rank dies).
  std::chrono::milliseconds timeout = std::chrono::seconds(60);

  // NCCL: which CUDA device this rank uses (usually its local rank) and how the ncclUniqueId is
  // exchanged (kGloo: through store_dir/store_prefix; kMpi: MPI_COMM_WORLD). World size 1 needs
  // neither.
  int cuda_device = 0;
  Backend nccl_bootstrap = Backend::kGloo;

  // MPI: -1 = all of MPI_COMM_WORLD. Otherwise MPI_Comm_split by this color (collective over
  // WORLD: every rank must create its communicator at the same point), and rank/size are within
  // the ranks of the same color (e.g. the workers of a job whose first ranks serve PS shards).
  int mpi_color = -1;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual Backend backend() const = 0;

  // In place: data[i] becomes the sum over ranks (divide by size() for a mean).
  virtual void AllreduceSum(float* data, size_t n) = 0;
  virtual void AllreduceSum(double* data, size_t n) = 0;
  virtual void AllreduceSum(int64_t* data, size_t n) = 0;
  // In place: every rank gets root's data.
  virtual void Broadcast(float* data, size_t n, int root) = 0;
  virtual void Barrier() = 0;
  // out holds size() * n elements: rank r's `in` lands at out + r * n.
  virtual void Allgather(const float* in, size_t n, float* out) = 0;
  // Same with raw bytes (fixed size per rank): out holds size() * bytes.
  virtual void AllgatherBytes(const void* in, size_t bytes, void* out) = 0;

 protected:
  Communicator() = default;
};

// Connects to the other ranks (blocks until all arrive or `timeout` passes) and returns the
// communicator. Throws CommunicatorError (rendezvous/transport failures, no CUDA device) or
// UserError (bad options).
std::unique_ptr<Communicator> MakeCommunicator(const CommunicatorOptions& options);

}  // namespace shardrec::dist

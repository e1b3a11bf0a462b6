// NCCL backend (built only with SHARDREC_HAVE_NCCL). One CUDA device per rank
// (options.cuda_device), one stream, blocking calls: each collective is enqueued and the stream
// synchronized before returning.
//
// Buffers: the float*/double*/int64_t* API accepts host or device pointers. Host pointers are
// staged through a device scratch buffer (cudaMemcpy in and out); device pointers (what the
// trainer will pass once its dense parameters live on the GPU) are used directly.
//
// Rendezvous: rank 0 creates the ncclUniqueId and it reaches the other ranks through a bootstrap
// communicator (gloo FileStore under "<prefix>/nccl-bootstrap", or MPI), chosen by
// options.nccl_bootstrap. World size 1 needs none.
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstring>
#include <vector>

#include "common/error.h"
#include "dist/communicator_backends.h"

namespace shardrec::dist {
namespace {

class NcclCommunicator final : public Communicator {
 public:
  explicit NcclCommunicator(const CommunicatorOptions& o) : rank_(o.rank), size_(o.size) {
    int devices = 0;
    cudaError_t err = cudaGetDeviceCount(&devices);
    if (err != cudaSuccess) Fail(std::string("NCCL backend: no CUDA device: ") + cudaGetErrorString(err));
    if (devices == 0) Fail("NCCL backend: no CUDA device: cudaGetDeviceCount returned 0");
    if (o.cuda_device < 0 || o.cuda_device >= devices)
      Fail("NCCL backend: no CUDA device: cuda_device " + std::to_string(o.cuda_device) + " is outside the " + std::to_string(devices) +
           " device(s) present");
    device_ = o.cuda_device;
    CudaCheck("cudaSetDevice", cudaSetDevice(device_));

    ncclUniqueId id;
    std::memset(&id, 0, sizeof(id));
    if (rank_ == 0) NcclCheck("ncclGetUniqueId", ncclGetUniqueId(&id));
    if (size_ > 1) {
      CommunicatorOptions b = o;
      b.backend = o.nccl_bootstrap;
      if (b.backend == Backend::kNccl) Fail("nccl_bootstrap must be gloo or mpi");
      if (b.backend == Backend::kGloo) b.store_prefix = o.store_prefix + "/nccl-bootstrap";
      bootstrap_ = MakeCommunicator(b);
      std::vector<char> all(sizeof(id) * size_);
      bootstrap_->AllgatherBytes(&id, sizeof(id), all.data());
      std::memcpy(&id, all.data(), sizeof(id));  // rank 0's
    }
    CudaCheck("cudaStreamCreate", cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    NcclCheck("ncclCommInitRank", ncclCommInitRank(&comm_, size_, id, rank_));
  }

  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
    if (stream_) cudaStreamDestroy(stream_);
    if (scratch_) cudaFree(scratch_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Backend backend() const override { return Backend::kNccl; }

  void AllreduceSum(float* data, size_t n) override { Allreduce(data, n, ncclFloat32); }
  void AllreduceSum(double* data, size_t n) override { Allreduce(data, n, ncclFloat64); }
  void AllreduceSum(int64_t* data, size_t n) override { Allreduce(data, n, ncclInt64); }

  void Broadcast(float* data, size_t n, int root) override {
    if (root < 0 || root >= size_) throw UserError(CommErrorMessage(Backend::kNccl, rank_, size_, "Broadcast: root " + std::to_string(root) + " is out of range"));
    size_t bytes = n * sizeof(float);
    void* buf = Stage(data, bytes, true);
    NcclCheck("ncclBroadcast", ncclBroadcast(buf, buf, n, ncclFloat32, root, comm_, stream_));
    Unstage(buf, data, bytes);
  }

  void Barrier() override {
    float x = 0;
    AllreduceSum(&x, 1);
  }

  void Allgather(const float* in, size_t n, float* out) override { AllgatherBytes(in, n * sizeof(float), out); }

  void AllgatherBytes(const void* in, size_t bytes, void* out) override {
    if (bytes == 0) return;
    bool in_dev = IsDevice(in), out_dev = IsDevice(out);
    char* dout = out_dev ? static_cast<char*>(out) : static_cast<char*>(Scratch(bytes * (size_ + 1)));
    const char* din = static_cast<const char*>(in);
    if (!in_dev) {
      char* staged = out_dev ? static_cast<char*>(Scratch(bytes)) : dout + bytes * size_;
      CudaCheck("cudaMemcpy", cudaMemcpyAsync(staged, in, bytes, cudaMemcpyHostToDevice, stream_));
      din = staged;
    }
    NcclCheck("ncclAllGather", ncclAllGather(din, dout, bytes, ncclChar, comm_, stream_));
    if (!out_dev) CudaCheck("cudaMemcpy", cudaMemcpyAsync(out, dout, bytes * size_, cudaMemcpyDeviceToHost, stream_));
    CudaCheck("cudaStreamSynchronize", cudaStreamSynchronize(stream_));
  }

 private:
  template <typename T>
  void Allreduce(T* data, size_t n, ncclDataType_t type) {
    if (n == 0) return;
    size_t bytes = n * sizeof(T);
    void* buf = Stage(data, bytes, true);
    NcclCheck("ncclAllReduce", ncclAllReduce(buf, buf, n, type, ncclSum, comm_, stream_));
    Unstage(buf, data, bytes);
  }

  bool IsDevice(const void* p) {
    cudaPointerAttributes attr;
    if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
      cudaGetLastError();  // clear: unregistered host memory reports an error on older runtimes
      return false;
    }
    return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged;
  }

  void* Scratch(size_t bytes) {
    if (bytes > scratch_bytes_) {
      if (scratch_) cudaFree(scratch_);
      scratch_ = nullptr;
      scratch_bytes_ = 0;
      CudaCheck("cudaMalloc", cudaMalloc(&scratch_, bytes));
      scratch_bytes_ = bytes;
    }
    return scratch_;
  }

  // Device pointer to operate on: `p` itself when it is device memory, else the scratch copy.
  void* Stage(void* p, size_t bytes, bool copy_in) {
    if (IsDevice(p)) return p;
    void* d = Scratch(bytes);
    if (copy_in) CudaCheck("cudaMemcpy", cudaMemcpyAsync(d, p, bytes, cudaMemcpyHostToDevice, stream_));
    return d;
  }
  void Unstage(void* d, void* p, size_t bytes) {
    if (d != p) CudaCheck("cudaMemcpy", cudaMemcpyAsync(p, d, bytes, cudaMemcpyDeviceToHost, stream_));
    CudaCheck("cudaStreamSynchronize", cudaStreamSynchronize(stream_));
  }

  void CudaCheck(const char* op, cudaError_t err) {
    if (err != cudaSuccess) Fail(std::string(op) + " (device " + std::to_string(device_) + "): " + cudaGetErrorString(err));
  }
  void NcclCheck(const char* op, ncclResult_t r) {
    if (r != ncclSuccess) Fail(std::string(op) + ": " + ncclGetErrorString(r) + (comm_ ? std::string(" (") + ncclGetLastError(comm_) + ")" : ""));
  }
  [[noreturn]] void Fail(const std::string& what) {
    // The destructor does not run when the constructor throws: release what was made so far.
    if (comm_) ncclCommDestroy(comm_), comm_ = nullptr;
    if (stream_) cudaStreamDestroy(stream_), stream_ = nullptr;
    if (scratch_) cudaFree(scratch_), scratch_ = nullptr;
    ThrowCommError(Backend::kNccl, rank_, size_, what);
  }

  int rank_, size_;
  int device_ = -1;
  std::unique_ptr<Communicator> bootstrap_;
  cudaStream_t stream_ = nullptr;
  ncclComm_t comm_ = nullptr;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
};

}  // namespace

std::unique_ptr<Communicator> MakeNcclCommunicator(const CommunicatorOptions& options) {
  return std::make_unique<NcclCommunicator>(options);
}

}  // namespace shardrec::dist

#pragma once
// Data-parallel synchronization of dense parameters: every rank holds a full replica, computes
// gradients on its own batch, and GradSync averages the gradients over ranks before the optimizer
// step (Horovod's Tensor Fusion / PyTorch DDP's buckets).
//
// Buckets. Parameters are taken in reverse registration order (backward produces gradients
// roughly in that order) and grouped into buckets of at most `bucket_bytes` of gradient (a
// parameter larger than that gets a bucket of its own). Each bucket is one flat float buffer:
//   [ grad of p0 | grad of p1 | ... | flag p0 | flag p1 | ... ]
// where flag = 1 if this rank had a gradient for the parameter this step, else 0. One
// AllreduceSum per bucket sums both; the gradients are then divided by the world size (a rank
// without a gradient contributes zeros, so the result is sum / world size, the gradient of the
// mean loss over all ranks' samples when every rank's batch has the same size), and the flag sums
// tell whether any rank had a gradient: if none did, param.grad() is left as it was (undefined on
// every rank), otherwise every rank gets the same averaged, defined param.grad(). So optimizers
// that skip undefined gradients (Adam, SGD) make the same decision on every rank.
//
// Collective order. Buckets are allreduced strictly in bucket index order on every rank (bucket i
// is launched only after buckets 0..i-1), so ranks whose gradients arrive in different orders, or
// ranks where some parameters get no gradient, still issue the same sequence of collectives.
//
// Overlap (options.overlap, the default). A hook is registered on every parameter
// (Tensor::register_hook). On a leaf tensor in LibTorch 1.13 this is a pre-hook of its
// AccumulateGrad node: it runs once per backward() with the *total* gradient for this backward
// (all uses of the parameter already summed), *before* that gradient is added into param.grad().
// The hook copies it into the parameter's slice of its bucket; when the last parameter of a bucket
// (and of all earlier buckets) has arrived, the bucket is queued to the worker thread, which
// allreduces it while backward goes on. The hook never modifies the gradient. Because the hook
// sees this backward's gradient and not param.grad(), GradSync assumes one backward() per
// Synchronize() and gradients zeroed (or unset) before it, as the trainer does
// (optimizer->zero_grad(); loss.backward(); ...). Synchronize() overwrites param.grad() with the
// average of the per-rank gradients of this step. A second gradient for a parameter before
// Synchronize() (gradient accumulation over several backward() calls) is reported as an error by
// Synchronize(); use overlap = false for that (then param.grad() itself is reduced).
// Parameters whose hook did not fire (no gradient this step) are filled in by Synchronize() from
// param.grad() if it is defined (zeros and flag 0 otherwise), and their buckets are launched then.
//
// Threading. The Communicator is not thread-safe. GradSync owns a worker thread and every call
// GradSync makes on the communicator (allreduce, broadcast) runs on that thread. Other users of the
// same Communicator (e.g. metric allgathers) may call it from their own thread only between steps:
// after Synchronize() returned and before the next backward() starts. Hooks run on the thread
// that runs backward (the caller's, on CPU) and only take a mutex and copy memory.
//
// World size 1: GradSync registers no hooks, starts no thread, copies nothing; every call is a
// no-op.
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <torch/torch.h>

#include "dist/communicator.h"

namespace shardrec::dist {

struct GradSyncOptions {
  // Upper bound on the gradient bytes fused into one allreduce.
  size_t bucket_bytes = size_t{25} << 20;
  // Launch buckets from gradient hooks during backward (true) or only in Synchronize().
  bool overlap = true;
};

class GradSync {
 public:
  struct Stats {
    int buckets = 0;                 // number of buckets (fixed at construction)
    int64_t steps = 0;               // Synchronize() calls that reduced something
    double allreduce_seconds = 0.0;  // worker time in AllreduceSum (+ average), all steps
    double wait_seconds = 0.0;       // caller time blocked in Synchronize(), all steps
    int64_t early_launches = 0;      // buckets queued from hooks during backward (overlap), all steps
  };

  // params: dense float32 tensors with requires_grad (typically module->parameters()); they must
  // outlive this object. comm must outlive it too; see "Threading" above. Throws UserError on a
  // parameter that is not a float32 leaf requiring grad, or on duplicates.
  GradSync(std::vector<torch::Tensor> params, Communicator* comm, GradSyncOptions options = {});
  ~GradSync();
  GradSync(const GradSync&) = delete;
  GradSync& operator=(const GradSync&) = delete;

  // Every rank's parameters become root's (call once after building the model, before training).
  void BroadcastParameters(int root = 0);
  // Same for any tensors, e.g. module->buffers() (BatchNorm running stats). float32 tensors are
  // fused into one broadcast; float64/int64 ones (num_batches_tracked) are sent exactly via an
  // allreduce of root's value against zeros. Other dtypes: UserError.
  void BroadcastTensors(std::vector<torch::Tensor> tensors, int root = 0);

  // Call once per step after loss.backward() returned and before optimizer->step(): waits until
  // every bucket is allreduced and writes the averaged gradients into param.grad(). Rethrows a
  // CommunicatorError from the worker (the communicator is unusable afterwards) or reports misuse
  // (sparse or second gradients) as UserError.
  void Synchronize();

  Stats stats() const;
  int world_size() const { return world_; }

 private:
  struct Slot {  // one parameter inside a bucket
    torch::Tensor param;
    int index = 0;       // position in the constructor's params (for messages)
    int64_t offset = 0;  // into the bucket buffer
    int64_t numel = 0;
    int flag_index = 0;  // buffer index of its flag
    bool arrived = false;
  };
  struct Bucket {
    std::vector<Slot> slots;
    torch::Tensor buffer;  // float32, numel = sum(slots.numel) + slots.size()
    int64_t grad_numel = 0;
    int arrived = 0;
    bool ready = false;     // every slot filled (by hooks or by Synchronize)
    bool launched = false;  // queued to the worker
    bool done = false;      // allreduced and averaged
  };

  void OnGrad(int bucket, int slot, const torch::Tensor& grad);
  void FillFromParamGrad(Bucket& b, Slot& s);                  // caller holds mu_
  void LaunchReadyLocked();                                    // caller holds mu_
  void RunOnWorker(std::function<void()> task);                // queues and waits
  void WorkerLoop();
  void ReduceBucket(Bucket& b);                                // worker thread
  void BroadcastFloatFused(std::vector<torch::Tensor>& tensors, int root);

  Communicator* comm_;
  GradSyncOptions options_;
  int world_ = 1;
  std::vector<Bucket> buckets_;
  std::vector<unsigned> hook_ids_;
  std::vector<torch::Tensor> hooked_params_;

  mutable std::mutex mu_;
  std::condition_variable cv_;         // worker: queue_ or stop_; caller: done/finished tasks
  std::deque<std::function<void()>> queue_;
  int next_launch_ = 0;                // buckets [0, next_launch_) are launched this step
  int done_count_ = 0;
  bool stop_ = false;
  std::exception_ptr worker_error_;
  std::string misuse_;                 // first misuse seen by a hook this step
  Stats stats_;
  std::thread worker_;
};

}  // namespace shardrec::dist

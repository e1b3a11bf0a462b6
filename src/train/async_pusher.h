#pragma once
// Applies a worker's sparse pushes in order on a background thread (ps.consistency ASYNC), so the
// next steps run while the PS updates rows. At most `max_inflight` steps' pushes wait in the
// queue; Submit blocks beyond that, which bounds how stale a pulled row can be.
#include <torch/torch.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "ps/ps_client.h"
#include "train/prepared_batch.h"

namespace shardrec::train {

class AsyncPusher {
 public:
  // `done(batch)` is called on the pusher thread after a batch's pushes are applied (to recycle it).
  AsyncPusher(ps::PsClient* ps, int max_inflight, std::function<void(std::unique_ptr<PreparedBatch>)> done);
  ~AsyncPusher();

  // Queues the pushes of one step: grads[t] is table t's [U + 1, D] row gradient (undefined when
  // the table got none); `batch` owns the ids and is handed to `done` afterwards.
  void Submit(std::unique_ptr<PreparedBatch> batch, std::vector<torch::Tensor> grads);

  // Returns once every submitted push is applied. Rethrows a PS error.
  void Drain();

 private:
  struct Job {
    std::unique_ptr<PreparedBatch> batch;
    std::vector<torch::Tensor> grads;
  };
  void Loop();

  ps::PsClient* ps_;
  const size_t max_inflight_;
  std::function<void(std::unique_ptr<PreparedBatch>)> done_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool busy_ = false, stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace shardrec::train

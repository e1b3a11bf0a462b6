#include "train/async_pusher.h"

namespace shardrec::train {

AsyncPusher::AsyncPusher(ps::PsClient* ps, int max_inflight, std::function<void(std::unique_ptr<PreparedBatch>)> done)
    : ps_(ps), max_inflight_(static_cast<size_t>(std::max(1, max_inflight))), done_(std::move(done)) {
  thread_ = std::thread([this] { Loop(); });
}

AsyncPusher::~AsyncPusher() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void AsyncPusher::Submit(std::unique_ptr<PreparedBatch> batch, std::vector<torch::Tensor> grads) {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return queue_.size() < max_inflight_ || error_; });
  if (error_) std::rethrow_exception(error_);
  queue_.push_back({std::move(batch), std::move(grads)});
  cv_.notify_all();
}

void AsyncPusher::Drain() {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return (queue_.empty() && !busy_) || error_; });
  if (error_) std::rethrow_exception(error_);
}

void AsyncPusher::Loop() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping with nothing left
      job = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
    }
    try {
      for (size_t t = 0; t < job.grads.size(); ++t) {
        const int64_t n = static_cast<int64_t>(job.batch->tables[t].ids.size());
        if (!job.grads[t].defined() || n == 0) continue;
        torch::Tensor g = job.grads[t].to(torch::kCPU).contiguous();
        ps_->Push(static_cast<int>(t), job.batch->tables[t].ids.data(), n, g.data_ptr<float>());
      }
      job.grads.clear();
      done_(std::move(job.batch));
    } catch (...) {
      std::lock_guard<std::mutex> l(mu_);
      error_ = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      busy_ = false;
    }
    cv_.notify_all();
  }
}

}  // namespace shardrec::train

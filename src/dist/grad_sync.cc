#include "dist/grad_sync.h"

#include <chrono>
#include <unordered_set>
#include <utility>

#include "common/error.h"

namespace shardrec::dist {
namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

std::string ParamName(int index) { return "GradSync: parameter " + std::to_string(index); }

}  // namespace

GradSync::GradSync(std::vector<torch::Tensor> params, Communicator* comm, GradSyncOptions options)
    : comm_(comm), options_(options) {
  if (!comm_) throw UserError("GradSync: communicator is null");
  world_ = comm_->size();
  std::unordered_set<const void*> seen;
  for (size_t i = 0; i < params.size(); ++i) {
    const torch::Tensor& p = params[i];
    const std::string name = ParamName(static_cast<int>(i));
    if (!p.defined()) throw UserError(name + " is undefined");
    if (p.scalar_type() != torch::kFloat) throw UserError(name + " is " + std::string(c10::toString(p.scalar_type())) + ", only float32 is supported");
    if (!p.requires_grad() || !p.is_leaf()) throw UserError(name + " is not a leaf tensor that requires grad");
    if (p.is_sparse()) throw UserError(name + " is sparse; only dense parameters are supported");
    if (!seen.insert(p.unsafeGetTensorImpl()).second) throw UserError(name + " appears twice");
    if (p.device() != params[0].device())
      throw UserError(name + " is on " + p.device().str() + " but parameter 0 is on " + params[0].device().str());
  }

  // Reverse registration order, greedy up to bucket_bytes (a larger parameter gets its own bucket).
  size_t bucket_bytes = 0;
  for (int i = static_cast<int>(params.size()) - 1; i >= 0; --i) {
    const size_t bytes = static_cast<size_t>(params[i].numel()) * sizeof(float);
    if (buckets_.empty() || (!buckets_.back().slots.empty() && bucket_bytes + bytes > options_.bucket_bytes)) {
      buckets_.emplace_back();
      bucket_bytes = 0;
    }
    Bucket& b = buckets_.back();
    Slot s;
    s.param = params[i];
    s.index = i;
    s.offset = b.grad_numel;
    s.numel = params[i].numel();
    b.grad_numel += s.numel;
    b.slots.push_back(std::move(s));
    bucket_bytes += bytes;
  }
  stats_.buckets = static_cast<int>(buckets_.size());
  if (world_ == 1) return;  // no buffers, no thread, no hooks

  for (Bucket& b : buckets_) {
    for (size_t j = 0; j < b.slots.size(); ++j) b.slots[j].flag_index = b.grad_numel + static_cast<int64_t>(j);
    b.buffer = torch::zeros({b.grad_numel + static_cast<int64_t>(b.slots.size())},
                            torch::TensorOptions().dtype(torch::kFloat).device(params[0].device()));
  }
  worker_ = std::thread([this] { WorkerLoop(); });
  if (options_.overlap) {
    for (size_t bi = 0; bi < buckets_.size(); ++bi) {
      for (size_t si = 0; si < buckets_[bi].slots.size(); ++si) {
        torch::Tensor& p = buckets_[bi].slots[si].param;
        const int b = static_cast<int>(bi), s = static_cast<int>(si);
        hook_ids_.push_back(p.register_hook([this, b, s](torch::Tensor grad) { OnGrad(b, s, grad); }));
        hooked_params_.push_back(p);
      }
    }
  }
}

GradSync::~GradSync() {
  for (size_t i = 0; i < hook_ids_.size(); ++i) {
    try {
      hooked_params_[i].remove_hook(hook_ids_[i]);
    } catch (...) {
    }
  }
  if (worker_.joinable()) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }
}

void GradSync::OnGrad(int bi, int si, const torch::Tensor& grad) {
  std::lock_guard<std::mutex> lk(mu_);
  Bucket& b = buckets_[bi];
  Slot& s = b.slots[si];
  if (!grad.defined()) return;  // treated like no gradient: Synchronize fills it in
  if (s.arrived || b.launched) {
    if (misuse_.empty())
      misuse_ = ParamName(s.index) + " received a second gradient before Synchronize(); with overlap=true call "
                "Synchronize() once per backward() (use overlap=false to accumulate gradients over several backward() calls)";
    return;
  }
  torch::NoGradGuard no_grad;
  if (grad.is_sparse()) {
    if (misuse_.empty()) misuse_ = ParamName(s.index) + " got a sparse gradient; GradSync handles dense gradients only";
    b.buffer.narrow(0, s.offset, s.numel).zero_();
    b.buffer.narrow(0, s.flag_index, 1).zero_();
  } else {
    b.buffer.narrow(0, s.offset, s.numel).copy_(grad.reshape({-1}));
    b.buffer.narrow(0, s.flag_index, 1).fill_(1.0f);
  }
  s.arrived = true;
  if (++b.arrived == static_cast<int>(b.slots.size())) {
    b.ready = true;
    stats_.early_launches -= next_launch_;
    LaunchReadyLocked();
    stats_.early_launches += next_launch_;
  }
}

void GradSync::FillFromParamGrad(Bucket& b, Slot& s) {
  torch::NoGradGuard no_grad;
  const torch::Tensor& g = s.param.grad();
  if (g.defined() && g.is_sparse()) {
    if (misuse_.empty()) misuse_ = ParamName(s.index) + " has a sparse gradient; GradSync handles dense gradients only";
  } else if (g.defined()) {
    b.buffer.narrow(0, s.offset, s.numel).copy_(g.reshape({-1}));
    b.buffer.narrow(0, s.flag_index, 1).fill_(1.0f);
    s.arrived = true;
    return;
  }
  b.buffer.narrow(0, s.offset, s.numel).zero_();
  b.buffer.narrow(0, s.flag_index, 1).zero_();
  s.arrived = true;
}

void GradSync::LaunchReadyLocked() {
  bool any = false;
  while (next_launch_ < static_cast<int>(buckets_.size()) && buckets_[next_launch_].ready) {
    Bucket* b = &buckets_[next_launch_];
    b->launched = true;
    queue_.push_back([this, b] { ReduceBucket(*b); });
    ++next_launch_;
    any = true;
  }
  if (any) cv_.notify_all();
}

void GradSync::ReduceBucket(Bucket& b) {
  bool skip;
  {
    std::lock_guard<std::mutex> lk(mu_);
    skip = static_cast<bool>(worker_error_);  // the communicator failed earlier: don't use it again
  }
  if (!skip) {
    const auto t0 = Clock::now();
    try {
      comm_->AllreduceSum(b.buffer.data_ptr<float>(), static_cast<size_t>(b.buffer.numel()));
      torch::NoGradGuard no_grad;
      b.buffer.narrow(0, 0, b.grad_numel).div_(static_cast<float>(world_));
    } catch (...) {
      std::lock_guard<std::mutex> lk(mu_);
      if (!worker_error_) worker_error_ = std::current_exception();
    }
    const double dt = Seconds(t0, Clock::now());
    std::lock_guard<std::mutex> lk(mu_);
    stats_.allreduce_seconds += dt;
  }
  std::lock_guard<std::mutex> lk(mu_);
  b.done = true;
  ++done_count_;
  cv_.notify_all();
}

void GradSync::WorkerLoop() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stop_ and nothing left
    std::function<void()> task = std::move(queue_.front());
    queue_.pop_front();
    lk.unlock();
    task();  // tasks catch their own exceptions
    lk.lock();
  }
}

void GradSync::RunOnWorker(std::function<void()> task) {
  std::exception_ptr error;
  bool finished = false;
  {
    std::unique_lock<std::mutex> lk(mu_);
    if (worker_error_) std::rethrow_exception(worker_error_);
    queue_.push_back([&] {
      try {
        task();
      } catch (...) {
        error = std::current_exception();
      }
      std::lock_guard<std::mutex> g(mu_);
      finished = true;
      cv_.notify_all();
    });
    cv_.notify_all();
    cv_.wait(lk, [&] { return finished; });
  }
  if (error) std::rethrow_exception(error);
}

void GradSync::Synchronize() {
  if (world_ == 1) return;
  const auto t0 = Clock::now();
  std::string misuse;
  std::exception_ptr error;
  {
    std::unique_lock<std::mutex> lk(mu_);
    // Parameters whose hook did not fire (no gradient in this backward, or overlap=false).
    for (Bucket& b : buckets_) {
      if (b.ready) continue;
      for (Slot& s : b.slots)
        if (!s.arrived) FillFromParamGrad(b, s);
      b.arrived = static_cast<int>(b.slots.size());
      b.ready = true;
    }
    LaunchReadyLocked();
    cv_.wait(lk, [&] { return done_count_ == static_cast<int>(buckets_.size()); });
    stats_.wait_seconds += Seconds(t0, Clock::now());
    ++stats_.steps;
    error = worker_error_;
    misuse = std::move(misuse_);
    misuse_.clear();
    next_launch_ = 0;
    done_count_ = 0;
  }
  // Backward has finished (the caller called us after it returned), so AccumulateGrad has written
  // param.grad(); overwrite it with the average.
  if (!error) {
    torch::NoGradGuard no_grad;
    for (Bucket& b : buckets_) {
      torch::Tensor flags = b.buffer.narrow(0, b.grad_numel, static_cast<int64_t>(b.slots.size())).to(torch::kCPU);
      const float* f = flags.data_ptr<float>();
      for (size_t j = 0; j < b.slots.size(); ++j) {
        Slot& s = b.slots[j];
        if (f[j] < 0.5f) continue;  // no rank had a gradient: leave param.grad() as it is (undefined everywhere)
        torch::Tensor avg = b.buffer.narrow(0, s.offset, s.numel).view(s.param.sizes());
        torch::Tensor& g = s.param.mutable_grad();
        if (g.defined() && !g.is_sparse() && g.sizes() == s.param.sizes())
          g.copy_(avg);
        else
          g = avg.clone();
      }
    }
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (Bucket& b : buckets_) {
      for (Slot& s : b.slots) s.arrived = false;
      b.arrived = 0;
      b.ready = b.launched = b.done = false;
    }
  }
  if (error) std::rethrow_exception(error);
  if (!misuse.empty()) throw UserError(misuse);
}

void GradSync::BroadcastParameters(int root) {
  std::vector<torch::Tensor> params;
  for (const Bucket& b : buckets_)
    for (const Slot& s : b.slots) params.push_back(s.param);
  BroadcastTensors(std::move(params), root);
}

void GradSync::BroadcastFloatFused(std::vector<torch::Tensor>& tensors, int root) {
  if (tensors.empty()) return;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> flat;
  for (const torch::Tensor& t : tensors) flat.push_back(t.detach().reshape({-1}));
  torch::Tensor buf = torch::cat(flat).contiguous();
  RunOnWorker([&] { comm_->Broadcast(buf.data_ptr<float>(), static_cast<size_t>(buf.numel()), root); });
  int64_t off = 0;
  for (torch::Tensor& t : tensors) {
    t.detach().copy_(buf.narrow(0, off, t.numel()).view(t.sizes()));
    off += t.numel();
  }
}

void GradSync::BroadcastTensors(std::vector<torch::Tensor> tensors, int root) {
  if (world_ == 1) return;
  if (root < 0 || root >= world_) throw UserError("GradSync: broadcast root " + std::to_string(root) + " is not a rank of " + std::to_string(world_));
  // Check every dtype before the first collective, so that a bad tensor fails on every rank alike.
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!tensors[i].defined()) continue;
    const auto type = tensors[i].scalar_type();
    if (type != torch::kFloat && type != torch::kDouble && type != torch::kLong)
      throw UserError("GradSync: cannot broadcast tensor " + std::to_string(i) + " of type " + std::string(c10::toString(type)) +
                      " (float32, float64 and int64 are supported)");
  }
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> floats;
  for (size_t i = 0; i < tensors.size(); ++i) {
    torch::Tensor& t = tensors[i];
    if (!t.defined()) continue;
    const auto type = t.scalar_type();
    if (type == torch::kFloat) {
      floats.push_back(t);
    } else {
      // Exact: root's values summed with zeros from everyone else.
      torch::Tensor buf = comm_->rank() == root ? t.detach().reshape({-1}).clone() : torch::zeros({t.numel()}, t.options());
      buf = buf.contiguous();
      RunOnWorker([&] {
        if (type == torch::kDouble)
          comm_->AllreduceSum(buf.data_ptr<double>(), static_cast<size_t>(buf.numel()));
        else
          comm_->AllreduceSum(buf.data_ptr<int64_t>(), static_cast<size_t>(buf.numel()));
      });
      t.detach().copy_(buf.view(t.sizes()));
    }
  }
  BroadcastFloatFused(floats, root);
}

GradSync::Stats GradSync::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

}  // namespace shardrec::dist

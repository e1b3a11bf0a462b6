// DIN's activation unit: the reference's formulation against ShardRec's, forward + backward in
// training mode, at the shapes of Torch-RecHub's Amazon example (batch 2048, max_len 50, embedding
// dim 8, Dice), for the paper's attention MLP [36] and the example's [256, 128], with history
// lengths uniform in 1..50 (as the generated behaviour data: ~half the positions real) or full.
// Prints one line per (units, fill, implementation): median ms per step, samples/s, CPU ms.
//
//   concat   the reference (din.py ActivationUnit): [t, h, t - h, t * h] at all B * L positions,
//            Linear -> BatchNorm1d -> Dice per hidden layer, Linear(., 1), weights * h summed.
//            Built from LibTorch modules (models::Activation's Dice); padded positions are scored
//            too (their weights are masked before pooling, which costs nothing).
//   split    two of ShardRec's ideas in plain tensor ops: the first Linear split as
//            (W1 + W3) t + (W2 - W3) h + W4 (t * h) with the target part once per row, and only
//            the real positions gathered; batch norm and Dice as the usual tensor ops.
//   ours     models::ActivationUnit: the above, with the first layer's projection, every batch
//            norm + activation and the output layer fused (fused_batch_norm_activation.h).
//
// Measured on the shared 2-core build machine (AMD EPYC, AVX-512 kernels; 2 threads, but other
// jobs held about one core, so 1-thread figures are the same), median of 10 steps:
//   [36]       uniform  concat 97.1 ms, split 50.3 (1.9x), ours 24.9 (3.9x)
//   [36]       full     concat 101.2 ms, ours 48.5 (2.1x)
//   [256,128]  uniform  concat 880.8 ms, split 456.0 (1.9x), ours 302.8 (2.9x)
//   [256,128]  full     concat 939.8 ms, ours 599.5 (1.6x)
//
// Usage: din_attention_bench [--batch 2048] [--len 50] [--dim 8] [--iters 20] [--threads 0 = all cores]
//                            [--units 36 | --units 256,128 (default: both)] [--impl concat|split|ours]
// DIN_BENCH_TRACE=PREFIX writes a LibTorch profiler trace per run to PREFIX-<impl>-<fill>.json.
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common/process_tuning.h"
#include "models/layers.h"
#include "models/sequence_layers.h"

namespace {

using shardrec::models::ActivationKind;
using shardrec::models::ActivationUnit;
using shardrec::models::ActivationUnitOptions;

struct Args {
  int64_t batch = 2048, len = 50, dim = 8, iters = 20;
  int threads = 0;
  // Hidden widths of the attention MLP to run: the paper's [36] and the reference example's
  // [256, 128] unless one is given (--units 36 or --units 256,128).
  std::vector<std::vector<int64_t>> units = {{36}, {256, 128}};
  std::string impl;  // run only this implementation (for profiling); empty: all three
};

std::vector<int64_t> ParseList(const char* s) {
  std::vector<int64_t> out;
  for (const char* p = s; *p != '\0';) {
    char* end = nullptr;
    out.push_back(std::strtoll(p, &end, 10));
    p = *end == ',' ? end + 1 : end;
    if (end == nullptr || (*end != ',' && *end != '\0')) break;
  }
  return out;
}

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const int64_t v = std::atoll(argv[i + 1]);
    if (k == "--batch")
      a.batch = v;
    else if (k == "--len")
      a.len = v;
    else if (k == "--dim")
      a.dim = v;
    else if (k == "--iters")
      a.iters = v;
    else if (k == "--threads")
      a.threads = static_cast<int>(v);
    else if (k == "--units")
      a.units = {ParseList(argv[i + 1])};
    else if (k == "--impl")
      a.impl = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      std::exit(2);
    }
  }
  return a;
}

// The reference's MLP layers, holding the same parameter tensors as `unit` (so every variant
// computes the same function).
struct Layers {
  std::vector<torch::nn::Linear> linear;
  std::vector<torch::nn::BatchNorm1d> bn;
  std::vector<shardrec::models::Activation> act;
  torch::nn::Linear out{nullptr};
};

Layers LayersOf(ActivationUnit& unit) {
  Layers l;
  for (const auto& child : unit->named_children()) {
    const std::string& n = child.key();
    if (n.rfind("linear", 0) == 0) l.linear.push_back(std::dynamic_pointer_cast<torch::nn::LinearImpl>(child.value()));
    if (n.rfind("bn", 0) == 0) l.bn.push_back(std::dynamic_pointer_cast<torch::nn::BatchNorm1dImpl>(child.value()));
    if (n.rfind("act", 0) == 0)
      l.act.push_back(std::dynamic_pointer_cast<shardrec::models::ActivationImpl>(child.value()));
    if (n == "out") l.out = std::dynamic_pointer_cast<torch::nn::LinearImpl>(child.value());
  }
  return l;
}

// Hidden layers first.. of the MLP: Linear -> BatchNorm1d -> activation.
torch::Tensor Hidden(Layers& l, torch::Tensor x, size_t first) {
  for (size_t i = first; i < l.linear.size(); ++i) x = l.act[i]->forward(l.bn[i]->forward(l.linear[i]->forward(x)));
  return x;
}

torch::Tensor Concat(Layers& l, const torch::Tensor& t, const torch::Tensor& h, const torch::Tensor& mask) {
  const int64_t B = h.size(0), L = h.size(1), D = h.size(2);
  torch::Tensor te = t.unsqueeze(1).expand({B, L, D});
  torch::Tensor x = torch::cat({te, h, te - h, te * h}, -1).view({B * L, 4 * D});
  torch::Tensor w = l.out->forward(Hidden(l, x, 0)).view({B, L}) * mask;
  return (w.unsqueeze(-1) * h).sum(1);
}

torch::Tensor Split(Layers& l, const torch::Tensor& t, const torch::Tensor& h, const torch::Tensor& mask) {
  const int64_t B = h.size(0), L = h.size(1), D = h.size(2);
  torch::Tensor flat = mask.reshape({-1}).nonzero().squeeze(1);
  torch::Tensor row = torch::div(flat, L, "floor");
  torch::Tensor hr = h.reshape({B * L, D}).index_select(0, flat);
  const torch::Tensor& w = l.linear[0]->weight;
  torch::Tensor wt = w.narrow(1, 0, D) + w.narrow(1, 2 * D, D);
  torch::Tensor wp = torch::cat({w.narrow(1, D, D) - w.narrow(1, 2 * D, D), w.narrow(1, 3 * D, D)}, 1);
  torch::Tensor per_row = torch::addmm(l.linear[0]->bias, t, wt.t());
  torch::Tensor z = torch::cat({hr, hr * t.index_select(0, row)}, 1).mm(wp.t()) + per_row.index_select(0, row);
  torch::Tensor x = l.act[0]->forward(l.bn[0]->forward(z));
  x = Hidden(l, x, 1);
  torch::Tensor s = l.out->forward(x).squeeze(1);
  return torch::zeros({B, D}).index_add(0, row, hr * s.unsqueeze(1));
}

double MedianMs(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// CPU time of every thread of this process, ms.
double ProcessCpuMs() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct Timing {
  double wall_ms, cpu_ms;  // medians per step
};

// Forward + backward of sum(pooled * g), after 3 warm-up steps: median wall time and CPU time
// (on a shared machine the CPU time moves less with other load).
Timing Time(const std::function<torch::Tensor()>& forward, const std::vector<torch::Tensor>& leaves,
            const torch::Tensor& g, int64_t iters) {
  std::vector<double> wall, cpu;
  for (int64_t i = 0; i < iters + 3; ++i) {
    for (torch::Tensor p : leaves)
      if (p.grad().defined()) p.mutable_grad().zero_();
    const double cpu0 = ProcessCpuMs();
    const auto start = std::chrono::steady_clock::now();
    (forward() * g).sum().backward();
    const double e = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (i >= 3) {
      wall.push_back(e);
      cpu.push_back(ProcessCpuMs() - cpu0);
    }
  }
  return {MedianMs(wall), MedianMs(cpu)};
}

}  // namespace

int main(int argc, char** argv) {
  // As the shardrec binary: no page faults on big activations, no spinning OpenMP threads, all
  // cores unless told.
  shardrec::EnsurePassiveOpenMp(argv);
  shardrec::TuneMalloc();
  const Args a = Parse(argc, argv);
  torch::set_num_threads(a.threads > 0 ? a.threads
                                       : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  std::printf(
      "DIN activation unit, forward + backward (training mode), batch %lld, max_len %lld, dim %lld, Dice, "
      "%d threads; median of %lld steps\n",
      static_cast<long long>(a.batch), static_cast<long long>(a.len), static_cast<long long>(a.dim),
      torch::get_num_threads(), static_cast<long long>(a.iters));
  std::printf("%-11s %-8s %-7s %9s %11s %9s %11s %9s\n", "units", "fill", "impl", "ms/step", "samples/s", "vs concat",
              "CPU ms", "vs concat");

  for (const std::vector<int64_t>& units : a.units) {
    for (const char* fill : {"uniform", "full"}) {
      torch::manual_seed(1);
      // Lengths uniform in 1..L as the generated behaviour data (about half the positions real),
      // or every position real.
      torch::Tensor lengths = std::strcmp(fill, "full") == 0 ? torch::full({a.batch}, a.len, torch::kLong)
                                                             : torch::randint(1, a.len + 1, {a.batch}, torch::kLong);
      torch::Tensor mask = torch::arange(a.len).unsqueeze(0) >= (a.len - lengths).unsqueeze(1);
      torch::Tensor t = torch::randn({a.batch, a.dim}).requires_grad_(true);
      torch::Tensor h = (torch::randn({a.batch, a.len, a.dim}) * mask.unsqueeze(-1)).requires_grad_(true);
      torch::Tensor g = torch::randn({a.batch, a.dim});

      ActivationUnitOptions o;
      o.units = units;
      o.activation = ActivationKind::kDice;
      ActivationUnit unit(a.dim, o);
      unit->train();
      Layers layers = LayersOf(unit);
      std::vector<torch::Tensor> leaves = unit->parameters();
      leaves.push_back(t);
      leaves.push_back(h);

      {
        // The implementations compute one function (in eval mode; in training mode the reference's
        // batch statistics also count padded positions).
        torch::NoGradGuard no_grad;
        unit->eval();
        const double diff = (unit->forward(t, h, mask) - Concat(layers, t, h, mask)).abs().max().item<double>();
        unit->train();
        if (!(diff < 1e-3)) {
          std::fprintf(stderr, "implementations disagree: max |ours - concat| = %g\n", diff);
          return 1;
        }
      }
      auto run = [&](const std::string& name, const std::function<torch::Tensor()>& forward) {
        if (!a.impl.empty() && a.impl != name) return Timing{NAN, NAN};
        if (std::getenv("DIN_BENCH_TRACE") != nullptr) {
          Time(forward, leaves, g, 2);
          torch::autograd::profiler::RecordProfile guard(std::string(std::getenv("DIN_BENCH_TRACE")) + "-" + name +
                                                         "-" + fill + ".json");
          return Time(forward, leaves, g, a.iters);
        }
        return Time(forward, leaves, g, a.iters);
      };
      const Timing concat = run("concat", [&] { return Concat(layers, t, h, mask); });
      const Timing split = run("split", [&] { return Split(layers, t, h, mask); });
      const Timing ours = run("ours", [&] { return unit->forward(t, h, mask); });
      std::string u;
      for (int64_t x : units) u += (u.empty() ? "[" : ",") + std::to_string(x);
      u += "]";
      for (auto [name, x] : {std::pair{"concat", concat}, std::pair{"split", split}, std::pair{"ours", ours}}) {
        if (std::isnan(x.wall_ms)) continue;  // not run (--impl)
        std::printf("%-11s %-8s %-7s %9.2f %11.0f %8.1fx %11.2f %8.1fx\n", u.c_str(), fill, name, x.wall_ms,
                    1000.0 * a.batch / x.wall_ms, concat.wall_ms / x.wall_ms, x.cpu_ms, concat.cpu_ms / x.cpu_ms);
      }
    }
  }
  return 0;
}

#include "models/fused_batch_norm_activation.h"

#include <cstdlib>
#include <string>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace shardrec::models {

// Layout: rows are processed in tiles of kLanes rows held transposed (one Lanes vector per unit):
// every operation then runs across the rows of a tile as one vector operation, and Dice's per-row
// reductions (mean and variance over the units) become lane-wise sums. Rows are split into
// chunks of ~512 (at segment starts when there is a row bias) that run in parallel; each chunk's
// sums are reduced in chunk order, so results do not depend on the thread count.
//
// Passes: forward = statistics (training mode) + output; backward = dy with its sums, then the
// gradient at x (through the batch norm) and on to the input, its weight and the row bias.
namespace {

// Lanes values only cross functions of this file (inlined); the AVX-512 calling-convention note
// does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

// Everything a kernel calls is force-inlined into it, so that each ISA variant of a kernel
// (see Kernels()) compiles all of its vector code for that ISA.
#define SHARDREC_INLINE inline __attribute__((always_inline))

constexpr int64_t kLanes = 16;
// kLanes floats as one value (GCC / clang vector extension, lowered to the target's SIMD width).
typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));
typedef int32_t LaneBits __attribute__((vector_size(kLanes * sizeof(int32_t))));

SHARDREC_INLINE Lanes Splat(float v) { return Lanes{} + v; }
// Per lane: a where mask (all ones), else b.
SHARDREC_INLINE Lanes Select(LaneBits mask, Lanes a, Lanes b) {
  return (Lanes)((mask & (LaneBits)a) | (~mask & (LaneBits)b));
}
SHARDREC_INLINE Lanes Clamp(Lanes x, float lo, float hi) {
  x = Select(x < lo, Splat(lo), x);
  return Select(x > hi, Splat(hi), x);
}
// The sum of the lanes, as a tree of vector halves (a few shuffles, not 16 dependent adds).
SHARDREC_INLINE float Sum(Lanes v) {
  typedef float Half __attribute__((vector_size(kLanes / 2 * sizeof(float))));
  typedef float Quarter __attribute__((vector_size(kLanes / 4 * sizeof(float))));
  static_assert(kLanes == 16, "Sum() halves 16 lanes");
  const Half h = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                 __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  const Quarter q = __builtin_shufflevector(h, h, 0, 1, 2, 3) + __builtin_shufflevector(h, h, 4, 5, 6, 7);
  return (q[0] + q[2]) + (q[1] + q[3]);
}

// exp(x) per lane (Cephes' polynomial, ~2 ulp on the clamped range; below -87 it returns ~1e-38
// instead of 0, above 88 it saturates at ~1.6e38).
SHARDREC_INLINE Lanes Exp(Lanes x) {
  x = Clamp(x, -87.0f, 88.0f);
  // n = floor(x log2(e) + 0.5), by truncation of a positive number.
  const LaneBits n = __builtin_convertvector(x * 1.44269504088896341f + (0.5f + 128.0f), LaneBits) - 128;
  const Lanes fn = __builtin_convertvector(n, Lanes);
  const Lanes r = x - fn * 0.693359375f + fn * 2.12194440e-4f;
  Lanes p = Splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * (Lanes)((n + 127) << 23);  // * 2^n
}

SHARDREC_INLINE Lanes Sigmoid(Lanes x) { return 1.0f / (1.0f + Exp(-x)); }

struct ActivationSpec {
  ActivationKind kind = ActivationKind::kRelu;
  float param = 0;  // Dice alpha or PReLU weight
  float dice_eps = 1e-3f;
};

// A tile is U * kLanes floats: unit u of lane (row) l at [u * kLanes + l]. Its Lanes values are
// read and written through memcpy (plain vector loads and stores, no aliasing questions).
// The first n (<= kLanes) floats at p as Lanes (zero after them), and back. A full tile is one
// vector load / store; only a chunk's last tile takes the variable-length copy.
SHARDREC_INLINE Lanes LoadLanes(const float* p, int64_t n) {
  Lanes v{};
  if (n == kLanes) {
    std::memcpy(&v, p, sizeof(v));
  } else {
    std::memcpy(&v, p, static_cast<size_t>(n) * sizeof(float));
  }
  return v;
}
SHARDREC_INLINE void StoreLanes(float* p, int64_t n, Lanes v) {
  if (n == kLanes) {
    std::memcpy(p, &v, sizeof(v));
  } else {
    std::memcpy(p, &v, static_cast<size_t>(n) * sizeof(float));
  }
}

SHARDREC_INLINE Lanes At(const float* tile, int64_t u) {
  Lanes v;
  std::memcpy(&v, tile + u * kLanes, sizeof(v));
  return v;
}
SHARDREC_INLINE void Put(float* tile, int64_t u, Lanes v) { std::memcpy(tile + u * kLanes, &v, sizeof(v)); }

// out = act(y) on a tile of U units. `work` holds one tile.
SHARDREC_INLINE void ActivateTile(const ActivationSpec& a, const float* y, float* out, int64_t U, float* work) {
  const Lanes zero{};
  switch (a.kind) {
    case ActivationKind::kRelu:
      for (int64_t u = 0; u < U; ++u) Put(out, u, Select(At(y, u) > 0, At(y, u), zero));
      return;
    case ActivationKind::kPrelu:
      for (int64_t u = 0; u < U; ++u) Put(out, u, Select(At(y, u) >= 0, At(y, u), a.param * At(y, u)));
      return;
    case ActivationKind::kLeakyRelu:
      for (int64_t u = 0; u < U; ++u) Put(out, u, Select(At(y, u) > 0, At(y, u), 0.01f * At(y, u)));
      return;
    case ActivationKind::kSigmoid:
      for (int64_t u = 0; u < U; ++u) Put(out, u, Sigmoid(At(y, u)));
      return;
    case ActivationKind::kTanh:
      for (int64_t u = 0; u < U; ++u) Put(out, u, 2.0f * Sigmoid(2.0f * At(y, u)) - 1.0f);
      return;
    case ActivationKind::kDice: {
      // Per row: p = sigmoid((y - mean) / sqrt(sum((y - mean)^2) + U eps)); out = y (alpha + p (1 - alpha)).
      Lanes mean{}, ss{};
      for (int64_t u = 0; u < U; ++u) mean += At(y, u);
      mean /= static_cast<float>(U);
      for (int64_t u = 0; u < U; ++u) {
        const Lanes c = At(y, u) - mean;
        Put(work, u, c);
        ss += c * c;
      }
      Lanes s = ss + a.dice_eps * static_cast<float>(U);
      for (int64_t l = 0; l < kLanes; ++l) s[l] = 1.0f / std::sqrt(s[l]);
      for (int64_t u = 0; u < U; ++u) {
        Put(out, u, At(y, u) * (a.param + Sigmoid(At(work, u) * s) * (1.0f - a.param)));
      }
      return;
    }
  }
}

// dy = act'(y) g on a tile; adds d act / d param . g to *dparam. `work` holds two tiles.
SHARDREC_INLINE void ActivationBackwardTile(const ActivationSpec& a, const float* y, const float* g, float* dy,
                                            int64_t U, float* work, double* dparam) {
  const Lanes zero{};
  switch (a.kind) {
    case ActivationKind::kRelu:
      for (int64_t u = 0; u < U; ++u) Put(dy, u, Select(At(y, u) > 0, At(g, u), zero));
      return;
    case ActivationKind::kPrelu: {
      Lanes dw{};
      for (int64_t u = 0; u < U; ++u) {
        const LaneBits pos = At(y, u) >= 0;
        Put(dy, u, Select(pos, At(g, u), a.param * At(g, u)));
        dw += Select(pos, zero, At(g, u) * At(y, u));
      }
      *dparam += Sum(dw);
      return;
    }
    case ActivationKind::kLeakyRelu:
      for (int64_t u = 0; u < U; ++u) Put(dy, u, Select(At(y, u) > 0, At(g, u), 0.01f * At(g, u)));
      return;
    case ActivationKind::kSigmoid:
      for (int64_t u = 0; u < U; ++u) {
        const Lanes p = Sigmoid(At(y, u));
        Put(dy, u, At(g, u) * p * (1.0f - p));
      }
      return;
    case ActivationKind::kTanh:
      for (int64_t u = 0; u < U; ++u) {
        const Lanes t = 2.0f * Sigmoid(2.0f * At(y, u)) - 1.0f;
        Put(dy, u, At(g, u) * (1.0f - t * t));
      }
      return;
    case ActivationKind::kDice: {
      // With c = y - mean, s = (sum c^2 + U eps)^-1/2, q = c s, p = sigmoid(q), per row:
      //   out = y (alpha + p (1 - alpha))
      //   d/dy directly:   alpha + p (1 - alpha)
      //   g_q = g y (1 - alpha) p (1 - p)
      //   g_c = s g_q - s^3 c sum(g_q c)      (through q = c s and s(c))
      //   dy += g_c - mean(g_c)               (through c = y - mean)
      //   d/dalpha = sum g y (1 - p)
      float* c = work;
      float* gq = work + U * kLanes;
      const float alpha = a.param;
      Lanes mean{}, ss{}, sum_gqc{}, sum_gc{}, dalpha{};
      for (int64_t u = 0; u < U; ++u) mean += At(y, u);
      mean /= static_cast<float>(U);
      for (int64_t u = 0; u < U; ++u) {
        const Lanes cu = At(y, u) - mean;
        Put(c, u, cu);
        ss += cu * cu;
      }
      Lanes s = ss + a.dice_eps * static_cast<float>(U);
      for (int64_t l = 0; l < kLanes; ++l) s[l] = 1.0f / std::sqrt(s[l]);
      const Lanes s3 = s * s * s;
      for (int64_t u = 0; u < U; ++u) {
        const Lanes cu = At(c, u), gu = At(g, u);
        const Lanes p = Sigmoid(cu * s);
        Put(dy, u, gu * (alpha + p * (1.0f - alpha)));
        const Lanes gy = gu * At(y, u);
        const Lanes gqu = gy * (1.0f - alpha) * p * (1.0f - p);
        Put(gq, u, gqu);
        dalpha += gy * (1.0f - p);
        sum_gqc += gqu * cu;
      }
      for (int64_t u = 0; u < U; ++u) {
        const Lanes gc = s * At(gq, u) - s3 * At(c, u) * sum_gqc;
        Put(gq, u, gc);
        sum_gc += gc;
      }
      const Lanes mean_gc = sum_gc / static_cast<float>(U);
      for (int64_t u = 0; u < U; ++u) Put(dy, u, At(dy, u) + At(gq, u) - mean_gc);
      *dparam += Sum(dalpha);
      return;
    }
  }
}

// Row ranges of ~kRowsPerChunk rows each. A fixed chunking (independent of the thread count) keeps
// the reductions' summation order, and so the results, the same on every machine. With segment
// offsets the bounds fall on segment starts, so that each segment's row-bias gradient has one
// owner.
std::vector<int64_t> ChunkBounds(int64_t n, const int64_t* offsets, int64_t segments) {
  constexpr int64_t kRowsPerChunk = 512;
  const int64_t chunks = std::max<int64_t>(1, (n + kRowsPerChunk - 1) / kRowsPerChunk);
  std::vector<int64_t> bounds{0};
  for (int64_t c = 1; c < chunks; ++c) {
    int64_t r = c * n / chunks;
    if (offsets != nullptr) r = *std::lower_bound(offsets, offsets + segments + 1, r);
    if (r > bounds.back() && r < n) bounds.push_back(r);
  }
  bounds.push_back(n);
  return bounds;
}

// The segment (batch row) of each row, walking forward from `begin`; -1 without offsets.
class SegmentWalker {
 public:
  SegmentWalker(const int64_t* offsets, int64_t segments, int64_t begin) : offsets_(offsets) {
    if (offsets_ != nullptr) s_ = std::upper_bound(offsets, offsets + segments + 1, begin) - offsets - 1;
  }
  SHARDREC_INLINE int64_t operator()(int64_t row) {
    if (offsets_ == nullptr) return -1;
    while (offsets_[s_ + 1] <= row) ++s_;
    return s_;
  }

 private:
  const int64_t* offsets_;
  int64_t s_ = -1;
};

// kLanes rows starting at r0 (n of them real) and their segments.
struct TileRows {
  int64_t r0 = 0, n = 0;
  int64_t segment[kLanes];
};

// The next tile of rows [r0, end) of a chunk.
SHARDREC_INLINE void NextTile(int64_t r0, int64_t end, SegmentWalker& walk, TileRows* t) {
  t->r0 = r0;
  t->n = std::min(kLanes, end - r0);
  for (int64_t l = 0; l < t->n; ++l) t->segment[l] = walk(r0 + l);
}

// Rows of m [N, U] (+ their segment's bias row) into a tile, transposed; lanes past n are zero.
SHARDREC_INLINE void LoadTile(const float* m, const float* bias, const TileRows& t, int64_t U, float* tile) {
  if (t.n < kLanes) std::fill(tile, tile + U * kLanes, 0.0f);
  for (int64_t l = 0; l < t.n; ++l) {
    const float* row = m + (t.r0 + l) * U;
    if (bias == nullptr) {
      for (int64_t u = 0; u < U; ++u) tile[u * kLanes + l] = row[u];
    } else {
      const float* b = bias + t.segment[l] * U;
      for (int64_t u = 0; u < U; ++u) tile[u * kLanes + l] = row[u] + b[u];
    }
  }
}

SHARDREC_INLINE void StoreTile(const float* tile, const TileRows& t, int64_t U, float* m) {
  for (int64_t l = 0; l < t.n; ++l) {
    float* row = m + (t.r0 + l) * U;
    for (int64_t u = 0; u < U; ++u) row[u] = tile[u * kLanes + l];
  }
}

// Runs of one segment among a tile's lanes (rows are sorted by segment): `mask` is 1 in the
// run's lanes, 0 elsewhere.
struct Runs {
  int64_t n = 0;
  int64_t segment[kLanes];
  Lanes mask[kLanes];
};

SHARDREC_INLINE void FindRuns(const TileRows& t, Runs* runs) {
  runs->n = 0;
  for (int64_t l = 0; l < t.n; ++l) {
    if (l == 0 || t.segment[l] != t.segment[l - 1]) {
      runs->segment[runs->n] = t.segment[l];
      runs->mask[runs->n] = Lanes{};
      ++runs->n;
    }
    runs->mask[runs->n - 1][l] = 1.0f;
  }
}

// What the chunk kernels read and write (pointers into the tensors of one call).
struct Kernel {
  int64_t U = 0;
  // The layer's input x [N, U] is given (z), or computed here as in [N, K] w_in[U, K]^T: the first
  // layer's Linear, without materialising [N, U] (or its gradient) at all. `in` is held
  // transposed ([K, N]: a tile's lanes of one input are contiguous), and so is its gradient.
  int64_t N = 0;
  const float* z = nullptr;
  const float* in = nullptr;
  const float* w_in = nullptr;
  int64_t K = 0;
  const float* bias = nullptr;  // [S, U], added to x per segment (batch row), or null
  const int64_t* offsets = nullptr;
  int64_t segments = 0;
  ActivationSpec act;
  const float* stat_shift = nullptr;  // statistics: per-unit shift k
  const float* scale = nullptr;       // y = x scale + shift
  const float* shift = nullptr;
  const float* mean = nullptr;  // backward: batch-norm mean and 1 / std
  const float* invstd = nullptr;
  const float* out_weight = nullptr;  // the fused output layer (scored), or null
  float out_bias = 0;
  const float* grad = nullptr;  // backward: [N] when scored, else [N, U]
  float* out = nullptr;         // forward: [N] or [N, U]
  float* dy = nullptr;          // backward: dy of every tile, in tile layout
  // Backward pass 2: dx = dk dy + da x + db per unit, then into dz [N, U] (given z) or din
  // [N, K] and w_in's gradient (computed x), and dbias [S, U].
  const float* dk = nullptr;
  const float* da = nullptr;
  const float* db = nullptr;
  float* dz = nullptr;
  float* din = nullptr;  // [K, N]
  float* dbias = nullptr;
};

// A tile from m [C, N] held transposed: lanes of column c are m[c, r0 .. r0 + n), contiguous.
SHARDREC_INLINE void LoadColumns(const float* m, int64_t N, const TileRows& t, int64_t C, float* tile) {
  for (int64_t c = 0; c < C; ++c) Put(tile, c, LoadLanes(m + c * N + t.r0, t.n));
}

SHARDREC_INLINE void StoreColumns(const float* tile, const TileRows& t, int64_t C, int64_t N, float* m) {
  for (int64_t c = 0; c < C; ++c) StoreLanes(m + c * N + t.r0, t.n, At(tile, c));
}

// x of a tile: loaded, or projected from `in`; plus the segments' bias. Unused lanes are zero.
// `xin` holds K Lanes.
SHARDREC_INLINE void ComputeX(const Kernel& k, const TileRows& t, const Runs& runs, float* xin, float* x) {
  const int64_t U = k.U, K = k.K;
  if (k.in == nullptr) {
    LoadTile(k.z, nullptr, t, U, x);
  } else {
    LoadColumns(k.in, k.N, t, K, xin);
    for (int64_t u = 0; u < U; ++u) {
      const float* w = k.w_in + u * K;
      Lanes acc{};
      for (int64_t i = 0; i < K; ++i) acc += At(xin, i) * w[i];
      Put(x, u, acc);
    }
  }
  if (k.bias == nullptr) return;
  for (int64_t u = 0; u < U; ++u) {
    Lanes v = At(x, u);
    for (int64_t r = 0; r < runs.n; ++r) v += runs.mask[r] * k.bias[runs.segment[r] * U + u];
    Put(x, u, v);
  }
}

// Scratch of one chunk: tiles of U (x, y, ...) and K (xin, din) Lanes.
struct Scratch {
  explicit Scratch(int64_t U, int64_t K)
      : x(U * kLanes),
        y(x.size()),
        a(x.size()),
        g(x.size()),
        dy(x.size()),
        work(2 * x.size()),
        xin(std::max<int64_t>(K, 1) * kLanes),
        din(xin.size()) {}
  std::vector<float> x, y, a, g, dy, work, xin, din;
};

// Sums of (x - k) and (x - k)^2 per unit over rows [begin, end): out[0, U) and out[U, 2U).
SHARDREC_INLINE void StatsBody(const Kernel& k, int64_t begin, int64_t end, double* out) {
  const int64_t U = k.U;
  Scratch s(U, k.K);
  std::vector<float> sum(static_cast<size_t>(U * kLanes), 0.0f), sq(sum.size(), 0.0f);
  SegmentWalker walk(k.offsets, k.segments, begin);
  TileRows t;
  Runs runs;
  for (int64_t r0 = begin; r0 < end; r0 += kLanes) {
    NextTile(r0, end, walk, &t);
    FindRuns(t, &runs);
    ComputeX(k, t, runs, s.xin.data(), s.x.data());
    Lanes real{};  // 1 in the lanes that hold a row
    for (int64_t l = 0; l < t.n; ++l) real[l] = 1.0f;
    for (int64_t u = 0; u < U; ++u) {
      const Lanes d = (At(s.x.data(), u) - k.stat_shift[u]) * real;
      Put(sum.data(), u, At(sum.data(), u) + d);
      Put(sq.data(), u, At(sq.data(), u) + d * d);
    }
  }
  for (int64_t u = 0; u < U; ++u) {
    out[u] = Sum(At(sum.data(), u));
    out[U + u] = Sum(At(sq.data(), u));
  }
}

// act(x scale + shift) for rows [begin, end), or with the output layer its score.
SHARDREC_INLINE void ForwardBody(const Kernel& k, int64_t begin, int64_t end) {
  const int64_t U = k.U;
  Scratch s(U, k.K);
  SegmentWalker walk(k.offsets, k.segments, begin);
  TileRows t;
  Runs runs;
  for (int64_t r0 = begin; r0 < end; r0 += kLanes) {
    NextTile(r0, end, walk, &t);
    FindRuns(t, &runs);
    ComputeX(k, t, runs, s.xin.data(), s.y.data());
    for (int64_t u = 0; u < U; ++u) Put(s.y.data(), u, At(s.y.data(), u) * k.scale[u] + k.shift[u]);
    ActivateTile(k.act, s.y.data(), s.a.data(), U, s.work.data());
    if (k.out_weight == nullptr) {
      StoreTile(s.a.data(), t, U, k.out);
      continue;
    }
    Lanes score = Splat(k.out_bias);
    for (int64_t u = 0; u < U; ++u) score += At(s.a.data(), u) * k.out_weight[u];
    StoreLanes(k.out + t.r0, t.n, score);
  }
}

// Backward pass 1 over rows [begin, end) (tiles numbered from tile0): dy, the gradient at the
// batch-norm output, into k.dy, and the sums
// out = [sum dy: U][sum dy xhat: U][d act param][d out weight: U][d out bias].
SHARDREC_INLINE void BackwardBody(const Kernel& k, int64_t begin, int64_t end, int64_t tile0, double* out) {
  const int64_t U = k.U;
  Scratch s(U, k.K);
  std::vector<float> sum_dy(static_cast<size_t>(U * kLanes), 0.0f), sum_dy_xhat(sum_dy.size(), 0.0f),
      dwo(sum_dy.size(), 0.0f);
  double dparam = 0;
  Lanes dbo{};
  SegmentWalker walk(k.offsets, k.segments, begin);
  TileRows t;
  Runs runs;
  for (int64_t r0 = begin, tile = tile0; r0 < end; r0 += kLanes, ++tile) {
    NextTile(r0, end, walk, &t);
    FindRuns(t, &runs);
    ComputeX(k, t, runs, s.xin.data(), s.x.data());
    for (int64_t u = 0; u < U; ++u) Put(s.y.data(), u, At(s.x.data(), u) * k.scale[u] + k.shift[u]);
    if (k.out_weight != nullptr) {
      // The output layer: g_a = g_score out_weight; its weight's gradient needs a = act(y).
      const Lanes gs = LoadLanes(k.grad + t.r0, t.n);  // zero in unused lanes: their dy is zero too
      ActivateTile(k.act, s.y.data(), s.a.data(), U, s.work.data());
      for (int64_t u = 0; u < U; ++u) {
        Put(s.g.data(), u, gs * k.out_weight[u]);
        Put(dwo.data(), u, At(dwo.data(), u) + gs * At(s.a.data(), u));
      }
      dbo += gs;
    } else {
      LoadTile(k.grad, nullptr, t, U, s.g.data());  // zero in unused lanes: their dy is zero too
    }
    float* dy = k.dy + tile * U * kLanes;
    ActivationBackwardTile(k.act, s.y.data(), s.g.data(), dy, U, s.work.data(), &dparam);
    for (int64_t u = 0; u < U; ++u) {
      const Lanes d = At(dy, u);
      Put(sum_dy.data(), u, At(sum_dy.data(), u) + d);
      Put(sum_dy_xhat.data(), u, At(sum_dy_xhat.data(), u) + d * ((At(s.x.data(), u) - k.mean[u]) * k.invstd[u]));
    }
  }
  for (int64_t u = 0; u < U; ++u) {
    out[u] = Sum(At(sum_dy.data(), u));
    out[U + u] = Sum(At(sum_dy_xhat.data(), u));
    out[2 * U + 1 + u] = Sum(At(dwo.data(), u));
  }
  out[2 * U] = dparam;
  out[3 * U + 1] = Sum(dbo);
}

// Backward pass 2 over rows [begin, end): dx = dk dy + da x + db, then dz, or din and the sums
// out[U * K] of w_in's gradient; the bias gradient per segment (segments do not cross chunks).
SHARDREC_INLINE void InputGradientBody(const Kernel& k, int64_t begin, int64_t end, int64_t tile0, double* out) {
  const int64_t U = k.U, K = k.K;
  Scratch s(U, K);
  // w_in's gradient sum_rows dx (x) in: each (u, i) accumulator is loaded and stored once per
  // kGroup tiles (kGroup fused multiply-adds), not once per tile.
  constexpr int64_t kGroup = 4;
  std::vector<float> dw(static_cast<size_t>(U * K * kLanes), 0.0f);
  std::vector<float> group_dx(static_cast<size_t>(kGroup * U * kLanes)),
      group_in(static_cast<size_t>(kGroup * K * kLanes));
  int64_t grouped = 0;
  auto flush = [&] {
    const int64_t dx_stride = U * kLanes, in_stride = K * kLanes;
    for (int64_t u = 0; u < U; ++u) {
      const float* dx = group_dx.data() + u * kLanes;
      for (int64_t i = 0; i < K; ++i) {
        const float* in = group_in.data() + i * kLanes;
        Lanes acc = At(dw.data(), u * K + i);
        if (grouped == kGroup) {  // the common case, unrolled
          acc += At(dx, 0) * At(in, 0) + At(dx + dx_stride, 0) * At(in + in_stride, 0) +
                 At(dx + 2 * dx_stride, 0) * At(in + 2 * in_stride, 0) +
                 At(dx + 3 * dx_stride, 0) * At(in + 3 * in_stride, 0);
        } else {
          for (int64_t j = 0; j < grouped; ++j) acc += At(dx + j * dx_stride, 0) * At(in + j * in_stride, 0);
        }
        Put(dw.data(), u * K + i, acc);
      }
    }
    grouped = 0;
  };
  SegmentWalker walk(k.offsets, k.segments, begin);
  TileRows t;
  Runs runs;
  for (int64_t r0 = begin, tile = tile0; r0 < end; r0 += kLanes, ++tile) {
    NextTile(r0, end, walk, &t);
    FindRuns(t, &runs);
    ComputeX(k, t, runs, s.xin.data(), s.x.data());
    Lanes real{};
    for (int64_t l = 0; l < t.n; ++l) real[l] = 1.0f;
    const float* dy = k.dy + tile * U * kLanes;
    float* dx = k.in == nullptr ? s.x.data() : group_dx.data() + grouped * U * kLanes;  // the gradient at x
    for (int64_t u = 0; u < U; ++u) Put(dx, u, (At(dy, u) * k.dk[u] + At(s.x.data(), u) * k.da[u] + k.db[u]) * real);
    if (k.dbias != nullptr) {
      for (int64_t u = 0; u < U; ++u)
        for (int64_t r = 0; r < runs.n; ++r) k.dbias[runs.segment[r] * U + u] += Sum(At(dx, u) * runs.mask[r]);
    }
    if (k.in == nullptr) {
      StoreTile(dx, t, U, k.dz);
      continue;
    }
    for (int64_t i = 0; i < K; ++i) {
      Lanes acc{};
      for (int64_t u = 0; u < U; ++u) acc += At(dx, u) * k.w_in[u * K + i];
      Put(s.din.data(), i, acc);
    }
    StoreColumns(s.din.data(), t, K, k.N, k.din);
    std::memcpy(group_in.data() + grouped * K * kLanes, s.xin.data(), static_cast<size_t>(K * kLanes) * sizeof(float));
    if (++grouped == kGroup) flush();
  }
  if (k.in != nullptr) {
    flush();
    for (int64_t i = 0; i < U * K; ++i) out[i] = Sum(At(dw.data(), i));
  }
}

// Each kernel compiled three times: baseline x86-64 (SSE2), AVX2 + FMA, AVX-512; Kernels()
// picks the best the CPU has, once.
#define SHARDREC_KERNEL_SET(NAME, TARGET)                                                                       \
  TARGET void Stats##NAME(const Kernel& k, int64_t b, int64_t e, int64_t, double* o) { StatsBody(k, b, e, o); } \
  TARGET void Forward##NAME(const Kernel& k, int64_t b, int64_t e, int64_t, double*) { ForwardBody(k, b, e); }  \
  TARGET void Backward##NAME(const Kernel& k, int64_t b, int64_t e, int64_t tile0, double* o) {                 \
    BackwardBody(k, b, e, tile0, o);                                                                            \
  }                                                                                                             \
  TARGET void InputGradient##NAME(const Kernel& k, int64_t b, int64_t e, int64_t tile0, double* o) {            \
    InputGradientBody(k, b, e, tile0, o);                                                                       \
  }
SHARDREC_KERNEL_SET(Generic, )
#if defined(__x86_64__)
SHARDREC_KERNEL_SET(Avx2, __attribute__((target("avx2,fma"))))
SHARDREC_KERNEL_SET(Avx512, __attribute__((target("avx512f"))))
#endif
#undef SHARDREC_KERNEL_SET

// A chunk kernel: (kernel, rows begin, end, index of the chunk's first tile, the chunk's sums).
using ChunkKernel = void (*)(const Kernel&, int64_t, int64_t, int64_t, double*);
struct KernelSet {
  ChunkKernel stats, forward, backward, input_gradient;
};

const KernelSet& Kernels() {
  static const KernelSet set = [] {
    // SHARDREC_SIMD=generic|avx2 picks a narrower set than the CPU allows (tests of every set on
    // one machine).
    const char* force = std::getenv("SHARDREC_SIMD");
    const std::string want = force ? force : "";
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (want.empty() && __builtin_cpu_supports("avx512f"))
      return KernelSet{StatsAvx512, ForwardAvx512, BackwardAvx512, InputGradientAvx512};
    if (want != "generic" && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
      return KernelSet{StatsAvx2, ForwardAvx2, BackwardAvx2, InputGradientAvx2};
#endif
    return KernelSet{StatsGeneric, ForwardGeneric, BackwardGeneric, InputGradientGeneric};
  }();
  return set;
}

// Runs `kernel` on every chunk in parallel, each with its own `width` sums (returned, chunk by
// chunk) and the index of its first tile.
std::vector<double> RunChunks(ChunkKernel kernel, const Kernel& k, const std::vector<int64_t>& bounds, int64_t width) {
  const auto chunks = static_cast<int64_t>(bounds.size()) - 1;
  std::vector<int64_t> tile0(static_cast<size_t>(chunks) + 1, 0);
  for (int64_t c = 0; c < chunks; ++c) tile0[c + 1] = tile0[c] + (bounds[c + 1] - bounds[c] + kLanes - 1) / kLanes;
  std::vector<double> partial(static_cast<size_t>(chunks * width), 0.0);
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) kernel(k, bounds[c], bounds[c + 1], tile0[c], partial.data() + c * width);
  });
  return partial;
}

// The sum of the chunks' sums, in chunk order (the same result on any thread count).
std::vector<double> Total(const std::vector<double>& partial, int64_t width) {
  std::vector<double> total(static_cast<size_t>(width), 0.0);
  for (size_t c = 0; c * width < partial.size(); ++c)
    for (int64_t i = 0; i < width; ++i) total[i] += partial[c * width + i];
  return total;
}

int64_t NumTiles(const std::vector<int64_t>& bounds) {
  int64_t n = 0;
  for (size_t c = 0; c + 1 < bounds.size(); ++c) n += (bounds[c + 1] - bounds[c] + kLanes - 1) / kLanes;
  return n;
}

// torch 1.13's Function::apply takes no undefined tensors: optional inputs are passed as empty
// tensors instead.
inline bool Present(const torch::Tensor& t) { return t.defined() && t.numel() > 0; }
inline torch::Tensor OrEmpty(const torch::Tensor& t) { return t.defined() ? t : torch::empty({0}); }

class BatchNormActivationFunction : public torch::autograd::Function<BatchNormActivationFunction> {
 public:
  // x = z [N, U], or x = in [N, K] w_in [U, K]^T when w_in is given; plus row_bias [S, U] per
  // segment of offsets [S + 1] (or both empty). Then act(BatchNorm(x)) with gamma, beta [U],
  // act_param [1] (Dice alpha, PReLU weight) or empty, running stats [U] (updated in training
  // mode). With out_weight [1, U] (and out_bias [1] or empty) the result is the output layer's
  // score act(.) . out_weight + out_bias, [N]; else act(.), [N, U].
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor z, torch::Tensor w_in,
                               torch::Tensor row_bias, torch::Tensor gamma, torch::Tensor beta, torch::Tensor act_param,
                               torch::Tensor out_weight, torch::Tensor out_bias, torch::Tensor running_mean,
                               torch::Tensor running_var, torch::Tensor offsets, int64_t kind, bool training,
                               double momentum, double eps) {
    const bool projected = Present(w_in);
    // The projected input is read column by column: keep it transposed ([K, N], one copy).
    z = projected ? z.t().contiguous() : z.contiguous();
    if (projected) w_in = w_in.contiguous();
    if (Present(row_bias)) row_bias = row_bias.contiguous();
    TORCH_CHECK(z.scalar_type() == torch::kFloat && z.dim() == 2, "fused batch norm: expected float [N, .], got ",
                z.sizes());
    const int64_t N = projected ? z.size(1) : z.size(0), U = projected ? w_in.size(0) : z.size(1),
                  K = projected ? w_in.size(1) : 0;
    TORCH_CHECK(!projected || z.size(0) == K, "fused batch norm: input ", z.t().sizes(), " does not match w_in ",
                w_in.sizes());
    const int64_t S = Present(offsets) ? offsets.size(0) - 1 : 0;
    Kernel k;
    k.N = N;
    k.U = U;
    k.K = K;
    (projected ? k.in : k.z) = z.data_ptr<float>();
    k.w_in = projected ? w_in.data_ptr<float>() : nullptr;
    k.bias = Present(row_bias) ? row_bias.data_ptr<float>() : nullptr;
    k.offsets = Present(offsets) ? offsets.data_ptr<int64_t>() : nullptr;
    k.segments = S;
    k.act.kind = static_cast<ActivationKind>(kind);
    k.act.param = Present(act_param) ? act_param.item<float>() : 0.0f;
    const std::vector<int64_t> bounds = ChunkBounds(N, k.offsets, S);

    torch::Tensor mean = torch::empty({U}, torch::kFloat), invstd = torch::empty({U}, torch::kFloat);
    if (training && N > 0) {
      // Sums of x - s (s = x of the first row) per unit: shifted, so that the variance does not
      // come from the difference of two large sums.
      std::vector<float> first(static_cast<size_t>(U));
      {
        const int64_t s0 = k.offsets != nullptr ? SegmentWalker(k.offsets, S, 0)(0) : -1;
        for (int64_t u = 0; u < U; ++u) {
          float v = 0;
          if (projected) {
            for (int64_t i = 0; i < K; ++i) v += k.in[i * N] * k.w_in[u * K + i];
          } else {
            v = k.z[u];
          }
          first[u] = v + (k.bias != nullptr ? k.bias[s0 * U + u] : 0.0f);
        }
      }
      k.stat_shift = first.data();
      const std::vector<double> total = Total(RunChunks(Kernels().stats, k, bounds, 2 * U), 2 * U);
      auto mn = mean.accessor<float, 1>();
      auto is = invstd.accessor<float, 1>();
      auto rm = running_mean.accessor<float, 1>();
      auto rv = running_var.accessor<float, 1>();
      for (int64_t u = 0; u < U; ++u) {
        const double shift = total[u] / static_cast<double>(N);
        const double mu = first[u] + shift;
        const double var = std::max(0.0, total[U + u] / static_cast<double>(N) - shift * shift);
        mn[u] = static_cast<float>(mu);
        is[u] = static_cast<float>(1.0 / std::sqrt(var + eps));
        // torch's BatchNorm: running statistics use the unbiased variance; one row has none.
        if (N > 1) {
          rm[u] = static_cast<float>((1 - momentum) * rm[u] + momentum * mu);
          rv[u] = static_cast<float>((1 - momentum) * rv[u] + momentum * var * N / (N - 1));
        }
      }
      k.stat_shift = nullptr;
    } else {
      mean.copy_(running_mean.detach());
      invstd.copy_(running_var.detach().add(eps).rsqrt());
      training = false;  // no batch statistics: backward is the affine map's
    }

    torch::Tensor scale = gamma.detach() * invstd;
    torch::Tensor shift = beta.detach() - mean * scale;
    const bool scored = Present(out_weight);
    torch::Tensor out = scored ? torch::empty({N}, z.options()) : torch::empty({N, U}, z.options());
    k.scale = scale.data_ptr<float>();
    k.shift = shift.data_ptr<float>();
    k.out_weight = scored ? out_weight.data_ptr<float>() : nullptr;
    k.out_bias = Present(out_bias) ? out_bias.item<float>() : 0.0f;
    k.out = out.data_ptr<float>();
    RunChunks(Kernels().forward, k, bounds, 0);

    ctx->save_for_backward(
        {z, w_in, row_bias, offsets, gamma, act_param, out_weight, out_bias, mean, invstd, scale, shift});
    ctx->saved_data["kind"] = kind;
    ctx->saved_data["training"] = training;
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &z = saved[0], &w_in = saved[1], &row_bias = saved[2], &offsets = saved[3], &gamma = saved[4],
                        &act_param = saved[5], &out_weight = saved[6], &out_bias = saved[7], &mean = saved[8],
                        &invstd = saved[9], &scale = saved[10], &shift = saved[11];
    const bool training = ctx->saved_data["training"].toBool();
    const bool projected = Present(w_in), scored = Present(out_weight);
    const int64_t N = projected ? z.size(1) : z.size(0), U = projected ? w_in.size(0) : z.size(1),
                  K = projected ? w_in.size(1) : 0;
    const int64_t S = Present(offsets) ? offsets.size(0) - 1 : 0;
    torch::Tensor g = grads[0].contiguous();

    Kernel k;
    k.N = N;
    k.U = U;
    k.K = K;
    (projected ? k.in : k.z) = z.data_ptr<float>();
    k.w_in = projected ? w_in.data_ptr<float>() : nullptr;
    k.bias = Present(row_bias) ? row_bias.data_ptr<float>() : nullptr;
    k.offsets = Present(offsets) ? offsets.data_ptr<int64_t>() : nullptr;
    k.segments = S;
    k.act.kind = static_cast<ActivationKind>(ctx->saved_data["kind"].toInt());
    k.act.param = Present(act_param) ? act_param.item<float>() : 0.0f;
    k.scale = scale.data_ptr<float>();
    k.shift = shift.data_ptr<float>();
    k.mean = mean.data_ptr<float>();
    k.invstd = invstd.data_ptr<float>();
    k.out_weight = scored ? out_weight.data_ptr<float>() : nullptr;
    k.grad = g.data_ptr<float>();
    const std::vector<int64_t> bounds = ChunkBounds(N, k.offsets, S);

    // Pass 1: dy (the gradient at the batch-norm output) for every tile, and the sums of dy,
    // dy xhat, the activation parameter's and the output layer's gradients.
    std::vector<float> dy(static_cast<size_t>(NumTiles(bounds) * U * kLanes));
    k.dy = dy.data();
    const int64_t width = 3 * U + 2;
    const std::vector<double> total = Total(RunChunks(Kernels().backward, k, bounds, width), width);
    torch::Tensor dgamma = torch::empty({U}, z.options()), dbeta = torch::empty({U}, z.options());
    for (int64_t u = 0; u < U; ++u) {
      dbeta.data_ptr<float>()[u] = static_cast<float>(total[u]);
      dgamma.data_ptr<float>()[u] = static_cast<float>(total[U + u]);
    }

    // Pass 2: through the normalisation. Training mode (batch statistics):
    //   dx = c (dy - mean(dy) - xhat mean(dy xhat)),  c = gamma invstd, xhat = (x - mu) invstd
    // written as dx = dk dy + da x + db per unit; eval mode: dx = c dy. Then through the bias and
    // the input projection.
    std::vector<float> dk(static_cast<size_t>(U)), da(static_cast<size_t>(U), 0.0f), db(static_cast<size_t>(U), 0.0f);
    {
      const float* gm = gamma.data_ptr<float>();
      for (int64_t u = 0; u < U; ++u) {
        dk[u] = gm[u] * k.invstd[u];
        if (training && N > 0) {
          const float mdy = static_cast<float>(total[u] / N), mdyx = static_cast<float>(total[U + u] / N);
          da[u] = -dk[u] * k.invstd[u] * mdyx;
          db[u] = -dk[u] * mdy + dk[u] * k.invstd[u] * mdyx * k.mean[u];
        }
      }
    }
    k.dk = dk.data();
    k.da = da.data();
    k.db = db.data();
    torch::Tensor dfirst = projected ? torch::empty({K, N}, z.options()) : torch::empty({N, U}, z.options()), dbias,
                  dw_in;
    (projected ? k.din : k.dz) = dfirst.data_ptr<float>();
    if (Present(row_bias)) {
      dbias = torch::zeros_like(row_bias);
      k.dbias = dbias.data_ptr<float>();
    }
    const std::vector<double> dw = Total(RunChunks(Kernels().input_gradient, k, bounds, U * K), U * K);
    if (projected) {
      dw_in = torch::empty({U, K}, z.options());
      for (int64_t i = 0; i < U * K; ++i) dw_in.data_ptr<float>()[i] = static_cast<float>(dw[i]);
    }

    torch::Tensor dparam, dwo, dbo;
    if (Present(act_param)) dparam = torch::full({1}, static_cast<float>(total[2 * U]), z.options());
    if (scored) {
      dwo = torch::empty_like(out_weight);
      for (int64_t u = 0; u < U; ++u) dwo.data_ptr<float>()[u] = static_cast<float>(total[2 * U + 1 + u]);
      if (Present(out_bias)) dbo = torch::full({1}, static_cast<float>(total[3 * U + 1]), z.options());
    }
    if (projected) dfirst = dfirst.t();  // [N, K], like the input
    return {dfirst,
            dw_in,
            dbias,
            dgamma,
            dbeta,
            dparam,
            dwo,
            dbo,
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

torch::Tensor FusedBatchNormActivation(const FusedLayer& layer) {
  TORCH_CHECK(layer.bn != nullptr, "FusedBatchNormActivation: no batch norm");
  torch::nn::BatchNorm1dImpl& bn = *layer.bn;
  if (layer.training) bn.num_batches_tracked += 1;
  return BatchNormActivationFunction::apply(
      layer.input, OrEmpty(layer.input_weight), OrEmpty(layer.row_bias), bn.weight, bn.bias,
      OrEmpty(layer.activation_param), OrEmpty(layer.out_weight), OrEmpty(layer.out_bias), bn.running_mean,
      bn.running_var, OrEmpty(layer.offsets), static_cast<int64_t>(layer.activation), layer.training,
      bn.options.momentum().value_or(0.1), bn.options.eps());
}

}  // namespace shardrec::models

#pragma once
// Building blocks of the synthetic layouts. Only integer hashing, the Rng and basic floating-point
// arithmetic (plus exp/log/pow), so a layout's bytes depend on nothing but its options.
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>

#include "common/hash.h"
#include "data/rng.h"

namespace shardrec::data::synthetic {

// Hash of a tuple of integers; the building block of every per-(field, id) latent value.
inline uint64_t Key(uint64_t a, uint64_t b, uint64_t c = 0, uint64_t d = 0) {
  return HashCombine(HashCombine(HashCombine(Mix64(a), b), c), d);
}

// About N(0, 1) from one hash: Irwin-Hall sum of four 16-bit uniforms, rescaled (|x| < 3.47).
inline double HashNormal(uint64_t h) {
  double s = 0;
  for (int i = 0; i < 4; ++i) s += static_cast<double>((h >> (16 * i)) & 0xffff) * (1.0 / 65536.0);
  return (s - 2.0) * 1.7320508075688772;
}

// About N(0, 1) from the Rng: Irwin-Hall sum of twelve uniforms.
inline double Normal(Rng& rng) {
  double s = 0;
  for (int i = 0; i < 12; ++i) s += rng.Uniform();
  return s - 6.0;
}

inline double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// Zipf-like ranks 1..n with P(r) ~ r^-exponent, by inverting the continuous power law on [1, n+1).
class Zipf {
 public:
  Zipf(int64_t n, double exponent) : n_(n < 1 ? 1 : n), a_(1.0 - exponent) {
    if (std::fabs(a_) < 1e-6) a_ = -1e-6;  // exponent 1: the limit, numerically
    span_ = std::pow(static_cast<double>(n_) + 1.0, a_) - 1.0;
  }
  int64_t Sample(Rng& rng) const {
    const double x = std::pow(1.0 + rng.Uniform() * span_, 1.0 / a_);
    const int64_t r = static_cast<int64_t>(x);
    return r < 1 ? 1 : (r > n_ ? n_ : r);
  }
  int64_t size() const { return n_; }

 private:
  int64_t n_;
  double a_, span_;
};

// The bias b with mean(Sigmoid(logits[i] + b)) == target (bisection).
template <typename Vec>
double CalibrateBias(const Vec& logits, double target) {
  double lo = -30, hi = 30;
  for (int it = 0; it < 80; ++it) {
    const double mid = 0.5 * (lo + hi);
    double sum = 0;
    for (double l : logits) sum += Sigmoid(l + mid);
    (sum / static_cast<double>(logits.size()) < target ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

inline void AppendInt(std::string* out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, r.ptr);
}

inline void AppendHex8(std::string* out, uint32_t v) {
  static const char kDigits[] = "0123456789abcdef";
  char buf[8];
  for (int i = 7; i >= 0; --i, v >>= 4) buf[i] = kDigits[v & 0xf];
  out->append(buf, 8);
}

// Fixed-point decimal with `digits` fraction digits (std::to_chars: exactly rounded everywhere).
inline void AppendFixed(std::string* out, double v, int digits) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, digits);
  out->append(buf, r.ptr);
}

}  // namespace shardrec::data::synthetic

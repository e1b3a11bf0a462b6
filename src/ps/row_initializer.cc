#include "ps/row_initializer.h"

#include <cmath>

#include "common/hash.h"

namespace shardrec::ps {
namespace {

// A counter-based generator: the k-th 64-bit draw of row `row_key`, no state carried between
// draws.
inline uint64_t Draw(uint64_t row_key, uint64_t k) { return Mix64(HashCombine(row_key, k)); }

// Uniform in [0, 1) from the top 53 bits.
inline double UnitOpen1(uint64_t x) { return static_cast<double>(x >> 11) * 0x1.0p-53; }
// Uniform in (0, 1]: safe for log().
inline double UnitOpen0(uint64_t x) { return static_cast<double>((x >> 11) + 1) * 0x1.0p-53; }

}  // namespace

RowInitializer::RowInitializer(const InitSpec& spec, int table)
    : spec_(spec), table_key_(HashCombine(spec.seed, static_cast<uint64_t>(table))) {}

void RowInitializer::Fill(int64_t id, float* out, int dim) const {
  const uint64_t row_key = HashCombine(table_key_, static_cast<uint64_t>(id));
  switch (spec_.kind) {
    case InitSpec::Kind::kZeros:
      for (int j = 0; j < dim; ++j) out[j] = 0.f;
      return;
    case InitSpec::Kind::kUniform: {
      const double low = spec_.low, width = static_cast<double>(spec_.high) - spec_.low;
      for (int j = 0; j < dim; ++j) {
        float v = static_cast<float>(low + width * UnitOpen1(Draw(row_key, j)));
        out[j] = std::fmin(v, spec_.high);  // rounding must not step past `high`
      }
      return;
    }
    case InitSpec::Kind::kNormal: {
      // Box-Muller: draw pair k gives elements 2k (cos) and 2k+1 (sin).
      constexpr double kTwoPi = 6.283185307179586476925286766559;
      for (int j = 0; j < dim; j += 2) {
        const uint64_t k = static_cast<uint64_t>(j / 2);
        const double u1 = UnitOpen0(Draw(row_key, 2 * k));
        const double u2 = UnitOpen1(Draw(row_key, 2 * k + 1));
        const double r = std::sqrt(-2.0 * std::log(u1));
        const double a = kTwoPi * u2;
        out[j] = static_cast<float>(spec_.mean + spec_.std * r * std::cos(a));
        if (j + 1 < dim) out[j + 1] = static_cast<float>(spec_.mean + spec_.std * r * std::sin(a));
      }
      return;
    }
  }
}

}  // namespace shardrec::ps

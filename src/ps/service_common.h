#pragma once
// What the PS server and client agree on besides the .proto: table identity and limits. No gRPC.
#include <cstdint>
#include <cstring>
#include <string>

#include "common/hash.h"
#include "ps/table_spec.h"

namespace shardrec::ps {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the PS wire format is little-endian int64/float32, copied as is: port the packing first");

inline constexpr int64_t kDefaultPsMessageBytes = int64_t{256} << 20;
inline constexpr char kPsServiceVersion[] = "shardrec-ps/1";

inline const char* OptimizerName(OptimizerSpec::Kind k) {
  switch (k) {
    case OptimizerSpec::Kind::kAdam: return "ADAM";
    case OptimizerSpec::Kind::kAdagrad: return "ADAGRAD";
    case OptimizerSpec::Kind::kSgd: return "SGD";
    case OptimizerSpec::Kind::kRowwiseAdagrad: return "ROWWISE_ADAGRAD";
    case OptimizerSpec::Kind::kFtrl: return "FTRL";
  }
  return "UNKNOWN";
}

// A hash of everything in a TableSpec that decides a row's values: equal specs, equal hashes.
inline uint64_t TableFingerprint(const TableSpec& t) {
  uint64_t h = HashValue(t.name);
  auto add = [&h](uint64_t v) { h = HashCombine(h, v); };
  auto addf = [&add](float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    add(bits);
  };
  add(static_cast<uint64_t>(t.dim));
  add(static_cast<uint64_t>(t.init.kind));
  addf(t.init.mean), addf(t.init.std), addf(t.init.low), addf(t.init.high);
  add(t.init.seed);
  const OptimizerSpec& o = t.optimizer;
  add(static_cast<uint64_t>(o.kind));
  for (float f : {o.lr, o.beta1, o.beta2, o.eps, o.initial_accumulator, o.weight_decay, o.ftrl_beta, o.l1, o.l2,
                  o.lr_power})
    addf(f);
  return h;
}

}  // namespace shardrec::ps

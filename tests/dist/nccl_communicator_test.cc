// NCCL backend (built only with SHARDREC_HAVE_NCCL). Without a CUDA device MakeCommunicator must
// fail with a clear error; with one, world size 1 arithmetic (multi-rank NCCL needs one GPU per rank).
#include <gtest/gtest.h>

#include <vector>

#include "dist/accelerator.h"
#include "dist/communicator.h"

namespace shardrec::dist {
namespace {

CommunicatorOptions NcclSingle() {
  CommunicatorOptions o;
  o.backend = Backend::kNccl;
  o.rank = 0;
  o.size = 1;
  return o;
}

TEST(NcclCommunicator, NoDeviceIsAClearError) {
  AcceleratorInfo info = ProbeAccelerators();
  ASSERT_TRUE(info.nccl_compiled);
  if (info.cuda_devices > 0) GTEST_SKIP() << "a CUDA device is present: see WorldSizeOneArithmetic";
  try {
    MakeCommunicator(NcclSingle());
    FAIL() << "expected an error without a CUDA device";
  } catch (const CommunicatorError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("NCCL backend: no CUDA device: "), std::string::npos) << m;
    EXPECT_NE(m.find("rank 0 of 1"), std::string::npos) << m;
  }
}

TEST(NcclCommunicator, WorldSizeOneArithmetic) {
  if (ProbeAccelerators().cuda_devices == 0) GTEST_SKIP() << "no GPU here";
  auto c = MakeCommunicator(NcclSingle());
  for (size_t n : {size_t{1}, size_t{1000}, size_t{1} << 20}) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i % 13) + 0.5f;
    c->AllreduceSum(v.data(), n);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(v[i], static_cast<float>(i % 13) + 0.5f);
  }
  std::vector<int64_t> iv = {1LL << 40, -3};
  c->AllreduceSum(iv.data(), iv.size());
  EXPECT_EQ(iv[0], 1LL << 40);
  std::vector<float> b = {1, 2, 3}, out(3);
  c->Broadcast(b.data(), 3, 0);
  c->Allgather(b.data(), 3, out.data());
  EXPECT_EQ(out, b);
  c->Barrier();
}

}  // namespace
}  // namespace shardrec::dist

// Allreduce bandwidth of our communicator backends, 1 MiB - 64 MiB float buffers.
//
//   allreduce_bench --backend gloo [--ranks 2]        (spawns the ranks itself, loopback TCP)
//   mpirun -np 2 allreduce_bench --backend mpi
//
// Prints, per size, the median time of 20 allreduces and the bus bandwidth
// 2 (n - 1) / n * bytes / time (NCCL-tests' convention: comparable across rank counts).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "dist/communicator.h"

using namespace shardrec;

namespace {

int Run(dist::Backend backend, int rank, int size, const std::string& store) {
  dist::CommunicatorOptions o;
  o.backend = backend;
  o.rank = backend == dist::Backend::kMpi ? -1 : rank;
  o.size = backend == dist::Backend::kMpi ? -1 : size;
  o.store_dir = store;
  o.store_prefix = "bench";
  auto comm = dist::MakeCommunicator(o);
  if (comm->rank() == 0) std::printf("%s, %d ranks\n%10s %12s %12s\n", dist::BackendName(backend), comm->size(), "MiB", "ms", "busbw GB/s");
  for (size_t mib : {1, 2, 4, 8, 16, 32, 64}) {
    std::vector<float> buf(mib * (1 << 20) / sizeof(float), 1.0f);
    std::vector<double> ms;
    for (int i = 0; i < 23; ++i) {
      comm->Barrier();
      const auto t0 = std::chrono::steady_clock::now();
      comm->AllreduceSum(buf.data(), buf.size());
      const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (i >= 3) ms.push_back(t);  // warm-up excluded
    }
    std::sort(ms.begin(), ms.end());
    const double med = ms[ms.size() / 2];
    const double n = comm->size();
    const double busbw = 2 * (n - 1) / n * static_cast<double>(mib << 20) / (med / 1000) / 1e9;
    if (comm->rank() == 0) std::printf("%10zu %12.2f %12.2f\n", mib, med, busbw);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string backend_name = "gloo";
  int ranks = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--backend")) backend_name = argv[i + 1];
    if (!std::strcmp(argv[i], "--ranks")) ranks = std::atoi(argv[i + 1]);
  }
  const dist::Backend backend = dist::ParseBackend(backend_name);
  if (backend == dist::Backend::kMpi) return Run(backend, -1, -1, "");
  if (const char* r = std::getenv("BENCH_RANK")) return Run(backend, std::atoi(r), ranks, std::getenv("BENCH_STORE"));
  // Parent: start the ranks as copies of this program.
  char tmpl[] = "/tmp/allreduce-bench-XXXXXX";
  const std::string store = mkdtemp(tmpl);
  std::vector<pid_t> pids;
  for (int r = 0; r < ranks; ++r) {
    const pid_t pid = fork();
    if (pid == 0) {
      setenv("BENCH_RANK", std::to_string(r).c_str(), 1);
      setenv("BENCH_STORE", store.c_str(), 1);
      execv("/proc/self/exe", argv);
      _exit(127);
    }
    pids.push_back(pid);
  }
  int rc = 0;
  for (pid_t p : pids) {
    int status = 0;
    waitpid(p, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) rc = 1;
  }
  std::filesystem::remove_all(store);
  return rc;
}

#include "dist/communicator.h"

#include "common/error.h"
#include "dist/communicator_backends.h"

namespace shardrec::dist {

Backend ParseBackend(const std::string& name) {
  if (name == "gloo") return Backend::kGloo;
  if (name == "mpi") return Backend::kMpi;
  if (name == "nccl") return Backend::kNccl;
  throw UserError("unknown communicator backend '" + name + "' (expected gloo, mpi or nccl)");
}

const char* BackendName(Backend backend) {
  switch (backend) {
    case Backend::kGloo: return "gloo";
    case Backend::kMpi: return "mpi";
    case Backend::kNccl: return "nccl";
  }
  return "?";
}

std::string CommErrorMessage(Backend backend, int rank, int size, const std::string& what) {
  return std::string(BackendName(backend)) + " backend, rank " + std::to_string(rank) + " of " + std::to_string(size) + ": " + what;
}

void ThrowCommError(Backend backend, int rank, int size, const std::string& what) {
  throw CommunicatorError(CommErrorMessage(backend, rank, size, what));
}

std::unique_ptr<Communicator> MakeCommunicator(const CommunicatorOptions& options) {
  if (options.backend != Backend::kMpi) {
    if (options.size < 1 || options.rank < 0 || options.rank >= options.size)
      throw UserError(std::string(BackendName(options.backend)) + " communicator: rank " + std::to_string(options.rank) +
                      " and size " + std::to_string(options.size) + " are invalid (need 0 <= rank < size)");
  }
  if (options.timeout.count() <= 0)
    throw UserError(std::string(BackendName(options.backend)) + " communicator: timeout must be positive");
  switch (options.backend) {
    case Backend::kGloo: return MakeGlooCommunicator(options);
    case Backend::kMpi: return MakeMpiCommunicator(options);
    case Backend::kNccl: return MakeNcclCommunicator(options);
  }
  throw UserError("unknown communicator backend");
}

#ifndef SHARDREC_HAVE_NCCL
std::unique_ptr<Communicator> MakeNcclCommunicator(const CommunicatorOptions& options) {
  ThrowCommError(Backend::kNccl, options.rank, options.size,
                 "not compiled in (CUDA/NCCL were not found at configure time, or SHARDREC_WITH_CUDA=OFF)");
}
#endif

}  // namespace shardrec::dist

#pragma once
// Internal to src/dist: the backend constructors MakeCommunicator dispatches to, and the shared
// error helper. Not included outside the communicator .cc files.
#include <memory>
#include <string>

#include "dist/communicator.h"

namespace shardrec::dist {

// "<backend> backend, rank R of N: what"
std::string CommErrorMessage(Backend backend, int rank, int size, const std::string& what);
[[noreturn]] void ThrowCommError(Backend backend, int rank, int size, const std::string& what);

std::unique_ptr<Communicator> MakeGlooCommunicator(const CommunicatorOptions& options);
std::unique_ptr<Communicator> MakeMpiCommunicator(const CommunicatorOptions& options);
// Defined in nccl_communicator.cc when built with SHARDREC_HAVE_NCCL, else in communicator.cc.
std::unique_ptr<Communicator> MakeNcclCommunicator(const CommunicatorOptions& options);

}  // namespace shardrec::dist

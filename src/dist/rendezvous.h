#pragma once
// Who this process is in a job: rank, world size and local rank, read from the environment the
// launcher left (ShardRec's own, Open MPI, PMI, SLURM or torchrun variables, in that order).
// The communicators and the launcher (distributed-training issue) build on this.
#include <map>
#include <string>

namespace shardrec::dist {

struct ProcessIdentity {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string source = "default";  // which launcher's variables were found
};

// `env` maps variable names to values (tests pass their own; the CLI passes the process's).
ProcessIdentity DetectIdentity(const std::map<std::string, std::string>& env);
ProcessIdentity DetectIdentityFromEnvironment();

}  // namespace shardrec::dist

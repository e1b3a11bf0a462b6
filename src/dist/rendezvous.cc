#include "dist/rendezvous.h"

#include <cstdlib>

#include "common/error.h"

extern char** environ;

namespace shardrec::dist {

namespace {

struct Scheme {
  const char* source;
  const char* rank;
  const char* size;
  const char* local_rank;  // may be absent
};

// Horovod-style fallback order: our own launcher first, then MPI, PMI, SLURM, torchrun.
constexpr Scheme kSchemes[] = {
    {"shardrec", "SHARDREC_RANK", "SHARDREC_WORLD_SIZE", "SHARDREC_LOCAL_RANK"},
    {"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
    {"pmi", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"},
    {"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"},
    {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"},
};

int ParseInt(const std::map<std::string, std::string>& env, const char* name) {
  const std::string& v = env.at(name);
  char* end = nullptr;
  long x = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || x < 0) throw UserError(std::string("environment variable ") + name + "='" + v + "' is not a non-negative integer");
  return static_cast<int>(x);
}

}  // namespace

ProcessIdentity DetectIdentity(const std::map<std::string, std::string>& env) {
  for (const Scheme& s : kSchemes) {
    if (!env.count(s.rank) || !env.count(s.size)) continue;
    ProcessIdentity id;
    id.source = s.source;
    id.rank = ParseInt(env, s.rank);
    id.world_size = ParseInt(env, s.size);
    id.local_rank = env.count(s.local_rank) ? ParseInt(env, s.local_rank) : 0;
    if (id.world_size < 1 || id.rank >= id.world_size)
      throw UserError(std::string(s.source) + " environment: rank " + std::to_string(id.rank) + " is outside world size " +
                      std::to_string(id.world_size));
    return id;
  }
  return {};
}

ProcessIdentity DetectIdentityFromEnvironment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    size_t eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return DetectIdentity(env);
}

}  // namespace shardrec::dist

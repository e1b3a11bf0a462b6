#include "cli/train_command.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>

#include "cli/ps_command.h"
#include "common/error.h"
#include "config/config_loader.h"
#include "dist/communicator.h"
#include "dist/rendezvous.h"
#include "ps/shard_server.h"
#include "train/device.h"
#include "train/job_checkpoint.h"
#include "train/trainer.h"

extern char** environ;

namespace shardrec::cli {
namespace {

namespace fs = std::filesystem;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::map<std::string, std::string> Environment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq) env[std::string(*e, static_cast<size_t>(eq - *e))] = eq + 1;
  }
  return env;
}

void PrintSummary(const config::Job& job, const std::string& path, const std::string& out, const train::TrainReport& r) {
  // "auc 0.78", or every task's "auc_click 0.78 auc_purchase 0.83" for multi-task models.
  auto metric = [](const train::MetricSet& m, const std::string& k) {
    std::string s;
    for (const auto& [name, v] : m)
      if (name == k || name.rfind(k + "_", 0) == 0) s += (s.empty() ? "" : " ") + name + " " + std::to_string(v);
    return s.empty() ? k + " -" : s;
  };
  std::cout << "shardrec train: " << (job.name().empty() ? path : job.name()) << " | epochs " << r.epochs.size()
            << " (best " << r.best_epoch << ") | validation " << metric(r.validation, "auc") << " "
            << metric(r.validation, "logloss") << " | test " << metric(r.test, "auc") << " | "
            << static_cast<int64_t>(r.train_samples_per_sec) << " samples/s (step "
            << static_cast<int64_t>(r.step_samples_per_sec) << ")"
            << (r.num_workers > 1 ? " over " + std::to_string(r.num_workers) + " workers" : std::string()) << " | "
            << (fs::path(out) / "metrics.json").string() << std::endl;
}

// The workers' collective backend. GradSync keeps its buckets where the parameters are, so GPU
// replicas need NCCL and host replicas Gloo or MPI.
dist::Backend WorkerBackend(const config::Job& job, bool under_mpi, bool on_gpu) {
  if (on_gpu && job.dist().backend() != config::Dist::AUTO && job.dist().backend() != config::Dist::NCCL)
    throw ConfigError("field dist.backend: the dense part trains on the GPU (trainer.device), whose gradients NCCL averages; "
                      "use NCCL or AUTO (or trainer.device: \"cpu\")");
  switch (job.dist().backend()) {
    case config::Dist::MPI:
      if (!under_mpi)
        throw ConfigError("field dist.backend: MPI needs the job to run under mpirun (this process was not started by it); use GLOO");
      return dist::Backend::kMpi;
    case config::Dist::NCCL:
      if (!on_gpu)
        throw ConfigError("field dist.backend: NCCL averages GPU tensors, and the dense part trains on the CPU here "
                          "(trainer.device, or a LibTorch without CUDA); use GLOO or MPI");
      return dist::Backend::kNccl;
    default:
      return on_gpu ? dist::Backend::kNccl : dist::Backend::kGloo;
  }
}

// A run id every process of one launch agrees on without talking: the gloo file store keys live
// under it, so two runs never read each other's keys.
std::string LauncherRunId() {
  for (const char* v : {"SHARDREC_RUN_ID", "TORCHELASTIC_RUN_ID"})
    if (!Env(v).empty()) return Env(v);
  if (!Env("SLURM_JOB_ID").empty()) return "slurm-" + Env("SLURM_JOB_ID") + "." + Env("SLURM_STEP_ID");
  if (!Env("MASTER_PORT").empty()) return "torchrun-" + Env("MASTER_ADDR") + "-" + Env("MASTER_PORT");
  return "run";
}

std::unique_ptr<dist::Communicator> Connect(dist::Backend backend, int rank, int size, int mpi_color, const std::string& store_dir,
                                            const std::string& prefix, double timeout_s, const std::string& host,
                                            int cuda_device = 0) {
  dist::CommunicatorOptions o;
  o.backend = backend;
  o.rank = backend == dist::Backend::kMpi ? -1 : rank;
  o.size = backend == dist::Backend::kMpi ? -1 : size;
  o.mpi_color = mpi_color;
  o.store_dir = store_dir;
  o.store_prefix = prefix;
  o.timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  if (!host.empty()) o.hostname = host;
  // NCCL's unique id goes through the gloo file store: an MPI bootstrap would involve the PS ranks.
  o.cuda_device = cuda_device;
  o.nccl_bootstrap = dist::Backend::kGloo;
  if (backend != dist::Backend::kMpi) fs::create_directories(store_dir);
  return dist::MakeCommunicator(o);
}

std::string AdvertisedHost(const config::Job& job) {
  const std::string& h = job.dist().host();
  if (h != "auto") return h;
  char name[256] = {0};
  gethostname(name, sizeof(name) - 1);
  return name;
}

}  // namespace

std::string DefaultOutputDir(const std::string& job_name, const std::string& configured, const std::string& config_path) {
  if (!configured.empty()) return configured;
  return (fs::path("runs") / (job_name.empty() ? fs::path(config_path).stem().string() : job_name)).string();
}

int RunTrainCommand(const TrainCommandOptions& o) {
  config::Job job = config::LoadJob(o.config_path, o.sets);
  const std::string out = o.output_dir.empty() ? DefaultOutputDir(job.name(), job.output_dir(), o.config_path) : o.output_dir;
  const dist::ProcessIdentity id = dist::DetectIdentity(Environment());
  train::TrainerOptions topts;
  topts.resume_from = o.resume;

  // Alone: the whole job in this process.
  if (id.world_size <= 1) {
    if (job.dist().num_workers() > 1)
      throw ConfigError(o.config_path + ": field dist.num_workers: " + std::to_string(job.dist().num_workers()) +
                        " workers need several processes: start them with `shardrec launch --workers " +
                        std::to_string(job.dist().num_workers()) + " ...` or under mpirun/srun");
    train::Trainer trainer(job, out, topts);
    PrintSummary(job, o.config_path, out, trainer.Run());
    return 0;
  }

  const std::string run_id = LauncherRunId();
  const std::string rendezvous = !Env("SHARDREC_RENDEZVOUS").empty() ? Env("SHARDREC_RENDEZVOUS")
                                 : job.dist().has_rendezvous_dir()   ? job.dist().rendezvous_dir()
                                                                     : (fs::path(out) / "rendezvous").string();
  const double timeout = job.dist().timeout_s();

  // Started by `shardrec launch`: a worker; the launcher runs the PS servers and passed their
  // addresses in the config overrides.
  if (id.source == "shardrec") {
    job.mutable_dist()->set_num_workers(id.world_size);
    const torch::Device device = train::ResolveDevice(job.trainer().device(), id.local_rank);
    auto comm = Connect(WorkerBackend(job, false, device.is_cuda()), id.rank, id.world_size, -1, rendezvous, run_id + "-workers",
                        timeout, job.dist().host() == "auto" ? AdvertisedHost(job) : job.dist().host(), device.index());
    topts.workers = {id.rank, id.world_size, comm.get(), id.local_rank};
    train::Trainer trainer(job, out, topts);
    train::TrainReport r = trainer.Run();
    if (id.rank == 0) PrintSummary(job, o.config_path, out, r);
    return 0;
  }

  // mpirun / srun / torchrun: this process is a PS rank or a worker rank.
  const bool external_ps = job.ps().addresses_size() > 0;
  const bool per_node = job.dist().ps_per_node() && !external_ps;
  const bool under_mpi = id.source == "openmpi" || id.source == "pmi";
  const dist::Backend exchange = under_mpi ? dist::Backend::kMpi : dist::Backend::kGloo;
  const std::string host = job.dist().host() == "auto" ? AdvertisedHost(job) : job.dist().host();
  // Everyone: the role exchange, the address exchange and, at the end, the barrier that lets the
  // PS ranks stop. Its timeout covers the whole run (PS ranks wait in it); mpirun/srun end the
  // job when a rank dies.
  auto world = Connect(exchange, id.rank, id.world_size, -1, rendezvous, run_id + "-world", 30.0 * 24 * 3600, host);
  // Roles: the first dist.num_ps ranks, or the first rank of every machine (dist.ps_per_node).
  const char mine_ps = external_ps ? 0 : per_node ? (id.local_rank == 0) : (id.rank < job.dist().num_ps());
  std::vector<char> roles(static_cast<size_t>(id.world_size));
  world->AllgatherBytes(&mine_ps, 1, roles.data());
  int num_ps = 0, shard = -1, worker_rank = -1, workers = 0;
  for (int r = 0; r < id.world_size; ++r) {
    int& count = roles[r] ? num_ps : workers;
    if (r == id.rank) (roles[r] ? shard : worker_rank) = count;
    ++count;
  }
  if (workers < 1)
    throw ConfigError(o.config_path + ": field dist.num_ps: " + std::to_string(num_ps) + " PS ranks leave no worker among " +
                      std::to_string(id.world_size) + " processes");
  const bool is_ps = mine_ps != 0;
  std::string resume_folder;
  if (!o.resume.empty()) resume_folder = train::FindCheckpoint(o.resume);

  constexpr size_t kAddressBytes = 256;
  std::vector<char> mine(kAddressBytes, 0), all(kAddressBytes * static_cast<size_t>(id.world_size), 0);
  std::unique_ptr<ps::ShardServer> server;
  if (is_ps) {
    PsCommandOptions po;
    po.shard_id = shard;
    po.port = 0;
    po.bind = job.dist().host() == "auto" ? "0.0.0.0" : (host.empty() ? "127.0.0.1" : host);
    po.data_dir = (fs::path(job.ps().has_data_dir() ? job.ps().data_dir() : (fs::path(out) / "ps").string()) /
                   ("shard-" + std::to_string(shard))).string();
    if (!resume_folder.empty()) {
      po.restore_from = (fs::path(resume_folder) / "ps" / ("shard-" + std::to_string(shard))).string();
    } else {
      fs::remove_all(po.data_dir);  // a new run starts from fresh tables
    }
    job.mutable_ps()->set_memory_only(false);
    server = StartShardServer(job, po, num_ps);
    std::string addr = server->address();
    if (job.dist().host() == "auto") addr = host + addr.substr(addr.rfind(':'));
    std::strncpy(mine.data(), addr.c_str(), kAddressBytes - 1);
  }
  world->AllgatherBytes(mine.data(), kAddressBytes, all.data());
  for (int r = 0; r < id.world_size; ++r)
    if (roles[r]) job.mutable_ps()->add_addresses(std::string(all.data() + r * kAddressBytes));  // in shard order

  // The workers' own communicator (MPI: a split of WORLD, which every rank must join).
  std::unique_ptr<dist::Communicator> comm;
  const torch::Device device = is_ps ? torch::Device(torch::kCPU) : train::ResolveDevice(job.trainer().device(), id.local_rank);
  // Every rank agrees on the backend (an MPI split must be joined by all of WORLD).
  const dist::Backend backend = WorkerBackend(job, under_mpi, device.is_cuda() || (is_ps && job.dist().backend() == config::Dist::NCCL));
  if (backend == dist::Backend::kMpi)
    comm = Connect(backend, -1, -1, is_ps ? 0 : 1, rendezvous, "", timeout, host);
  else if (!is_ps)
    comm = Connect(backend, worker_rank, workers, -1, rendezvous, run_id + "-workers", timeout, host, device.index());

  int rc = 0;
  if (is_ps) {
    world->Barrier();  // until every worker is done
    server->Shutdown(5.0);
    server->Wait();
  } else {
    job.mutable_dist()->set_num_workers(workers);
    topts.workers = {worker_rank, workers, comm.get(), id.local_rank};
    topts.resume_from = resume_folder;
    train::Trainer trainer(job, out, topts);
    train::TrainReport r = trainer.Run();
    if (worker_rank == 0) PrintSummary(job, o.config_path, out, r);
    world->Barrier();
  }
  return rc;
}

}  // namespace shardrec::cli

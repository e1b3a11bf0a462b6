// Process identity from each launcher's environment, in the documented precedence order.
#include <gtest/gtest.h>

#include "common/error.h"
#include "dist/rendezvous.h"

namespace shardrec::dist {
namespace {

TEST(Rendezvous, DefaultsToSingleProcess) {
  ProcessIdentity id = DetectIdentity({{"PATH", "/bin"}});
  EXPECT_EQ(id.rank, 0);
  EXPECT_EQ(id.world_size, 1);
  EXPECT_EQ(id.source, "default");
}

TEST(Rendezvous, ReadsEachLauncher) {
  struct Case {
    std::map<std::string, std::string> env;
    std::string source;
    int rank, size, local;
  };
  const Case cases[] = {
      {{{"SHARDREC_RANK", "3"}, {"SHARDREC_WORLD_SIZE", "4"}, {"SHARDREC_LOCAL_RANK", "1"}}, "shardrec", 3, 4, 1},
      {{{"OMPI_COMM_WORLD_RANK", "2"}, {"OMPI_COMM_WORLD_SIZE", "5"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "0"}}, "openmpi", 2, 5, 0},
      {{{"PMI_RANK", "1"}, {"PMI_SIZE", "2"}}, "pmi", 1, 2, 0},
      {{{"SLURM_PROCID", "7"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "3"}}, "slurm", 7, 8, 3},
      {{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "0"}}, "torchrun", 0, 2, 0},
  };
  for (const Case& c : cases) {
    ProcessIdentity id = DetectIdentity(c.env);
    EXPECT_EQ(id.source, c.source);
    EXPECT_EQ(id.rank, c.rank) << c.source;
    EXPECT_EQ(id.world_size, c.size) << c.source;
    EXPECT_EQ(id.local_rank, c.local) << c.source;
  }
}

TEST(Rendezvous, OwnVariablesWinOverMpiAndSlurm) {
  // mpirun inside a SLURM allocation sets both; the more specific launcher wins.
  ProcessIdentity id = DetectIdentity({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"},
                                       {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"},
                                       {"SHARDREC_RANK", "0"}, {"SHARDREC_WORLD_SIZE", "3"}});
  EXPECT_EQ(id.source, "shardrec");
  EXPECT_EQ(id.world_size, 3);
  id = DetectIdentity({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}});
  EXPECT_EQ(id.source, "openmpi");
  EXPECT_EQ(id.rank, 1);
}

TEST(Rendezvous, BadValuesAreErrors) {
  EXPECT_THROW(DetectIdentity({{"PMI_RANK", "x"}, {"PMI_SIZE", "2"}}), UserError);
  EXPECT_THROW(DetectIdentity({{"PMI_RANK", "2"}, {"PMI_SIZE", "2"}}), UserError);
}

}  // namespace
}  // namespace shardrec::dist

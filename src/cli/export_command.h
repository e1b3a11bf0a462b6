#pragma once
// `shardrec export CONFIG --run DIR --out OUT [--set path=value ...]`: what serving a finished
// matching run needs, without the PS or the training data.
//   OUT/item_embeddings.f32   [N, D] float32, row-major, little-endian: the item tower's vector
//                             of every catalogue item (unit norm for the L2-normalising models)
//   OUT/item_ids.i64          [N] int64: each row's item id as ShardRec keys it (HashValue of the
//                             raw value, common/hash.h)
//   OUT/user_tower.pt         the dense parameters and buffers the user tower reads (a LibTorch
//                             archive, names as in the model: load into CreateModel(config))
//   OUT/tables/<t>.ids.i64, OUT/tables/<t>.f32
//                             the embedding rows of every id the user features take in the data
//   OUT/spec.json             model kind, embedding dim, interests, temperature, the user
//                             features (column, kind, pooling, max_len, table, dim), tables,
//                             parameter shapes, file layouts, and the job config
// There is no TorchScript for ShardRec's C++ modules: a server computes the user vector with
// ShardRec's model code (models::CreateModel on the config's model block, then user_tower.pt),
// feeding it the rows of its user features looked up in tables/ (hash the raw values with
// HashValue; unknown ids: the table's initializer, or zeros), and searches item_embeddings.f32
// by inner product (faiss IndexFlatIP or an IVF index); a multi-interest user queries once per
// interest and merges by the best score.
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace shardrec::cli {

struct ExportCommandOptions {
  std::string config_path;
  std::vector<std::string> sets;
  std::string run_dir;
  std::string out_dir;
};

CLI::App* AddExportCommand(CLI::App& app, ExportCommandOptions* options);
int RunExportCommand(const ExportCommandOptions& options);

}  // namespace shardrec::cli

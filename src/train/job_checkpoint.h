#pragma once
// Whole-job checkpoints on disk: <root>/ckpt-<global step>/ with the dense weights, the dense
// optimizer state, a checkpoint of every PS shard (ps/shard-<i>) and manifest.pbtxt, written last
// and atomically, so a folder without a manifest is an interrupted checkpoint and is ignored.
// Torch-free: the trainer writes the torch parts, this module names, finds and validates them.
#include <string>
#include <vector>

#include "shardrec/checkpoint.pb.h"

namespace shardrec::train {

inline constexpr const char* kManifestFile = "manifest.pbtxt";

// <root>/ckpt-<global_step, zero-padded so names sort by step>.
std::string CheckpointFolder(const std::string& root, int64_t global_step);

// Writes manifest.pbtxt into `folder` atomically (temp file + rename). Throws UserError.
void WriteManifest(const std::string& folder, const checkpoint::Manifest& manifest);

// Reads `folder`/manifest.pbtxt. Throws UserError naming the file (and line) when it is missing
// or malformed.
checkpoint::Manifest ReadManifest(const std::string& folder);

// The checkpoint to resume from: `path` itself when it holds a manifest, else its newest complete
// ckpt-* sub-folder. Throws UserError when there is none.
std::string FindCheckpoint(const std::string& path);

// Removes all but the newest `keep` complete checkpoints under `root`, and interrupted ones older
// than the newest complete one.
void PruneCheckpoints(const std::string& root, int keep);

// Throws UserError when the checkpoint was written by a job of another shape (workers, shards,
// tables): a resume continues the same job.
void CheckSameShape(const checkpoint::Manifest& m, const std::string& folder, int num_workers, int num_shards,
                    const std::vector<std::string>& tables);

}  // namespace shardrec::train

#pragma once
// DSSM (Huang et al., CIKM 2013), as Torch-RecHub's models/matching/dssm.py:
//   u = L2norm(user MLP(Flatten(user features))), i = L2norm(item MLP(Flatten(item features)));
//   score = <u, i> / temperature (a cosine, the towers' outputs having unit norm).
// Towers: hidden_units then embedding_dim (default [256, 128] + 64), PReLU by default (the
// reference examples' "important!!" choice), or user_tower / item_tower of their own; see
// models/two_tower.h. Trained point-wise by default (the reference's mode 0).
// Deliberate difference: the reference ignores its temperature (it returns sigmoid(<u, i>));
// here the score is divided by it, so temperature 1 reproduces the reference.
#include "models/two_tower.h"

namespace shardrec::config {
class Dssm;
}

namespace shardrec::models {

class Dssm : public TwoTowerModel {
 public:
  // Throws ConfigError with field paths under model.dssm.
  Dssm(const config::Dssm& config, const data::FeatureSchema& schema);

  MatchLoss default_loss() const override { return MatchLoss::kPointwise; }
};

}  // namespace shardrec::models

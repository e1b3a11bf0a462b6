#pragma once
// One MLP hidden layer over many rows, fused into a few passes: a = act(BatchNorm1d(x)) with
//   x = input                        (input [N, U]), or
//   x = input W^T                    (input [N, K] and input_weight W [U, K]: the layer's Linear,
//                                     so that [N, U] and its gradient are never materialised),
//   plus row_bias[s] for the rows of segment s (rows sorted by segment, offsets [S + 1]),
// and optionally the output layer fused too: score = a . out_weight + out_bias, [N].
// Batch norm uses the batch's statistics in training mode (running statistics updated as torch's
// BatchNorm1d does: momentum, unbiased variance) and the running ones in eval mode. Activations:
// every ActivationKind, Dice with eps 1e-3 as layers.h. Backward gives the gradients of every
// tensor input and parameter.
//
// Why: DIN's activation unit runs its MLP at every real history position (N ~ 50k-100k rows at
// batch 2048) with few units (36). As tensor ops its batch norm and Dice are a dozen passes over
// [N, U] forward and twice as many backward, each allocating [N, U]; here the rows go in tiles of
// 16 held transposed in SIMD registers, with per-element values recomputed instead of stored. The
// vector code is compiled for baseline x86-64, AVX2 + FMA and AVX-512 and picked at run time
// (results differ between them by float rounding only). Float32 CPU tensors only.
#include <torch/nn/modules/batchnorm.h>
#include <torch/types.h>

#include "models/layers.h"

namespace shardrec::models {

struct FusedLayer {
  torch::Tensor input;         // [N, U], or [N, K] with input_weight
  torch::Tensor input_weight;  // [U, K], or undefined
  torch::Tensor row_bias;      // [S, U], or undefined
  torch::Tensor offsets;       // int64 [S + 1] (with row_bias): segment s = rows [offsets[s], offsets[s + 1])
  torch::nn::BatchNorm1dImpl* bn = nullptr;  // weight, bias, running statistics, momentum, eps
  ActivationKind activation = ActivationKind::kRelu;
  torch::Tensor activation_param;  // [1]: Dice alpha or PReLU weight; undefined for the others
  torch::Tensor out_weight;        // [1, U]: fuse the output layer; or undefined
  torch::Tensor out_bias;          // [1], or undefined
  bool training = true;
};

// a [N, U], or the scores [N] with out_weight. In training mode bn's running statistics and
// num_batches_tracked are updated.
torch::Tensor FusedBatchNormActivation(const FusedLayer& layer);

}  // namespace shardrec::models

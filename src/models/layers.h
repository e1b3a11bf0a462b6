#pragma once
// Dense layers shared by the models: activations (incl. Dice), MLP, LR and FM. They follow
// Torch-RecHub's basic/layers.py and basic/activation.py layer by layer, so that a model built
// from them computes what the reference computes. Every layer is a torch::nn module whose
// parameters are registered (parameters(), named_parameters(), torch::save see them).
#include <torch/nn/module.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <vector>

namespace shardrec::config {
class Mlp;
}

namespace shardrec::models {

// ---------------------------------------------------------------------------------------------
// Activations

enum class ActivationKind { kRelu, kPrelu, kSigmoid, kLeakyRelu, kDice, kTanh };

// Dice (DIN paper), as the reference computes it over the last dimension of x:
//   c = x - mean(x); v = sum((x - mean)^2 + eps); p = sigmoid(c / sqrt(v));
//   out = p * x + (1 - p) * alpha * x.
// Note that eps is added per element before the sum (so the denominator holds N * eps for N
// neurons), exactly as the reference does. alpha is one learned scalar, initialised N(0, 1) like
// the reference's torch.randn(1).
class DiceImpl : public torch::nn::Module {
 public:
  explicit DiceImpl(double eps = 1e-3);
  torch::Tensor forward(const torch::Tensor& x);

  double eps() const { return eps_; }
  torch::Tensor alpha;  // [1]

 private:
  double eps_;
};
TORCH_MODULE(Dice);

// One activation chosen at construction. relu, sigmoid, leakyrelu (slope 0.01) and tanh have no
// parameters; prelu is torch's PReLU (one parameter, init 0.25); dice is Dice above.
class ActivationImpl : public torch::nn::Module {
 public:
  explicit ActivationImpl(ActivationKind kind);
  torch::Tensor forward(const torch::Tensor& x);
  // Same result; may overwrite x (relu, sigmoid, leakyrelu, tanh do). Use only on a tensor that
  // nothing else needs, e.g. a fresh batch-norm output.
  torch::Tensor forward_(torch::Tensor x);

  ActivationKind kind() const { return kind_; }

 private:
  ActivationKind kind_;
  torch::nn::PReLU prelu_{nullptr};
  Dice dice_{nullptr};
};
TORCH_MODULE(Activation);

// ---------------------------------------------------------------------------------------------
// MLP

struct MlpOptions {
  std::vector<int64_t> dims;          // hidden layer widths
  double dropout = 0;                 // every hidden layer's dropout ...
  std::vector<double> dropout_rates;  // ... unless given per layer (then one per dim)
  ActivationKind activation = ActivationKind::kRelu;
  bool output_layer = true;  // append Linear(dims.back(), 1)
  bool batch_norm = true;    // BatchNorm1d after each hidden Linear (the reference MLP's)

  double DropoutOf(size_t layer) const { return dropout_rates.empty() ? dropout : dropout_rates[layer]; }
};

// Translates a config Mlp. `default_dims` are used when the config gives no dims.
MlpOptions MlpOptionsFromConfig(const config::Mlp& config, const std::vector<int64_t>& default_dims,
                                bool output_layer);

// Each hidden layer: Linear -> BatchNorm1d -> activation -> Dropout; then optionally Linear(., 1).
// Input [B, input_dim]; output [B, 1] with the output layer, else [B, dims.back()] (or the input
// itself when there are no layers at all). Submodules: linear<i>, bn<i>, act<i>, out.
// Throws ConfigError for non-positive dims, dropout outside [0, 1] or a dropout_rates list whose
// length differs from dims.
class MLPImpl : public torch::nn::Module {
 public:
  MLPImpl(int64_t input_dim, MlpOptions options);
  torch::Tensor forward(torch::Tensor x);

  int64_t input_dim() const { return input_dim_; }
  int64_t output_dim() const { return output_dim_; }
  const MlpOptions& options() const { return options_; }

 private:
  struct Hidden {
    torch::nn::Linear linear{nullptr};
    torch::nn::BatchNorm1d bn{nullptr};
    Activation act{nullptr};
    double dropout = 0;
  };
  int64_t input_dim_;
  int64_t output_dim_;
  MlpOptions options_;
  std::vector<Hidden> hidden_;
  torch::nn::Linear out_{nullptr};
};
TORCH_MODULE(MLP);

// ---------------------------------------------------------------------------------------------
// First- and second-order terms

// Logistic-regression term without the sigmoid: Linear(input_dim, 1). [B, input_dim] -> [B, 1].
class LRImpl : public torch::nn::Module {
 public:
  explicit LRImpl(int64_t input_dim, bool bias = true);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(LR);

// Factorization machine second-order term over field embeddings x [B, F, D]:
//   0.5 * ((sum_f v_f)^2 - sum_f v_f^2), i.e. sum_{i<j} v_i * v_j elementwise,
// summed over D to [B, 1] when reduce_sum (default), else [B, D]. No parameters.
class FMImpl : public torch::nn::Module {
 public:
  explicit FMImpl(bool reduce_sum = true) : reduce_sum_(reduce_sum) {}
  torch::Tensor forward(const torch::Tensor& x);

 private:
  bool reduce_sum_;
};
TORCH_MODULE(FM);

}  // namespace shardrec::models

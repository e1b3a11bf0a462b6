#include "models/interaction_layers.h"

#include <torch/nn/init.h>
#include <torch/torch.h>

#include <cmath>
#include <stdexcept>

#include "common/error.h"
#include "models/dropout.h"

namespace shardrec::models {

FieldPairs AllFieldPairs(int64_t num_fields) {
  std::vector<int64_t> left, right;
  for (int64_t i = 0; i < num_fields; ++i) {
    for (int64_t j = i + 1; j < num_fields; ++j) {
      left.push_back(i);
      right.push_back(j);
    }
  }
  return {torch::tensor(left, torch::kLong), torch::tensor(right, torch::kLong)};
}

namespace {

// Field pairs need at least two fields of at least one dimension.
void CheckFields(const char* layer, int64_t num_fields, int64_t embed_dim) {
  if (num_fields < 2 || embed_dim < 1) {
    throw std::invalid_argument(std::string(layer) + ": needs >= 2 fields of dimension >= 1, got " +
                                std::to_string(num_fields) + " fields of dimension " + std::to_string(embed_dim));
  }
}

void CheckInput(const char* layer, const torch::Tensor& v, int64_t num_fields, int64_t embed_dim) {
  TORCH_CHECK(v.dim() == 3 && v.size(1) == num_fields && (embed_dim == 0 || v.size(2) == embed_dim), layer,
              ": expected field embeddings [B, ", num_fields, ", ", embed_dim, "], got ", v.sizes());
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// AttentionalPooling

AttentionalPoolingImpl::AttentionalPoolingImpl(AttentionalPoolingOptions options)
    : options_(std::move(options)), pairs_(AllFieldPairs(options_.num_fields)) {
  CheckFields("AttentionalPooling", options_.num_fields, options_.embed_dim);
  if (options_.attention_units.empty()) throw std::invalid_argument("AttentionalPooling: no attention layer");
  if (!(options_.dropout >= 0 && options_.dropout < 1)) {
    throw std::invalid_argument("AttentionalPooling: dropout must be in [0, 1), got " + std::to_string(options_.dropout));
  }
  int64_t width = options_.embed_dim;
  for (size_t k = 0; k < options_.attention_units.size(); ++k) {
    const int64_t units = options_.attention_units[k];
    if (units < 1) throw std::invalid_argument("AttentionalPooling: attention width must be >= 1, got " + std::to_string(units));
    attention_.push_back(register_module("attention" + std::to_string(k), torch::nn::Linear(width, units)));
    width = units;
  }
  h = register_parameter("h", torch::empty({width, 1}));
  p = register_parameter("p", torch::empty({options_.embed_dim, 1}));
  torch::NoGradGuard no_grad;
  torch::nn::init::xavier_uniform_(h);
  torch::nn::init::xavier_uniform_(p);
}

torch::Tensor AttentionalPoolingImpl::PairProducts(const torch::Tensor& v) const {
  CheckInput("AttentionalPooling", v, options_.num_fields, options_.embed_dim);
  // Pair-major [P, B, D]: gathering whole [B, D] field slices (dim 0 of the [F, B, D] view) makes
  // the gathers and their backward (index_add_) contiguous row copies.
  const torch::Tensor by_field = v.transpose(0, 1);
  return by_field.index_select(0, pairs_.left.to(v.device())) * by_field.index_select(0, pairs_.right.to(v.device()));
}

torch::Tensor AttentionalPoolingImpl::Softmax(const torch::Tensor& products) {
  const int64_t num_pairs = products.size(0), batch = products.size(1);
  // All P * B interaction vectors through the attention network as one matrix; ReLU in place on
  // each fresh Linear output (no second [P * B, t] buffer); the scores by mv, not a GEMM with a
  // [t, 1] matrix (OpenBLAS runs those, and their k = 1 backward, far slower).
  torch::Tensor x = products.view({num_pairs * batch, options_.embed_dim});
  for (torch::nn::Linear& layer : attention_) x = layer->forward(x).relu_();
  return torch::softmax(torch::mv(x, h.view(-1)).view({num_pairs, batch}), 0);  // over each row's pairs
}

torch::Tensor AttentionalPoolingImpl::attention(const torch::Tensor& v) { return Softmax(PairProducts(v)).t(); }

torch::Tensor AttentionalPoolingImpl::forward(const torch::Tensor& v) {
  torch::Tensor e = PairProducts(v);  // [P, B, D]
  torch::Tensor a = Softmax(e);       // [P, B]
  // sum_ij a_ij e_ij as a broadcast product and a sum over the outer dim: CPU bmm of B tiny
  // [1, P] x [P, D] matrices would run one BLAS call per row (this LibTorch has no batched BLAS).
  torch::Tensor pooled = (e * a.unsqueeze(2)).sum(0);  // [B, D]
  if (is_training() && options_.dropout > 0) pooled = Dropout(pooled, options_.dropout);
  return pooled.mv(p.view(-1)).unsqueeze(1);
}

// ---------------------------------------------------------------------------------------------
// Senet

SenetImpl::SenetImpl(int64_t num_fields, int64_t reduction_ratio) {
  if (num_fields < 1 || reduction_ratio < 1) {
    throw std::invalid_argument("Senet: needs >= 1 field and reduction_ratio >= 1, got " + std::to_string(num_fields) +
                                " and " + std::to_string(reduction_ratio));
  }
  reduced_size_ = std::max<int64_t>(1, num_fields / reduction_ratio);
  squeeze = register_module("squeeze", torch::nn::Linear(torch::nn::LinearOptions(num_fields, reduced_size_).bias(false)));
  excite = register_module("excite", torch::nn::Linear(torch::nn::LinearOptions(reduced_size_, num_fields).bias(false)));
}

torch::Tensor SenetImpl::weights(const torch::Tensor& v) {
  CheckInput("Senet", v, squeeze->options.in_features(), 0);
  return torch::relu(excite->forward(torch::relu(squeeze->forward(v.mean(-1)))));
}

torch::Tensor SenetImpl::forward(const torch::Tensor& v) { return v * weights(v).unsqueeze(-1); }

// ---------------------------------------------------------------------------------------------
// BilinearInteraction

BilinearType ParseBilinearType(const std::string& name, const std::string& field) {
  for (BilinearType t : {BilinearType::kFieldAll, BilinearType::kFieldEach, BilinearType::kFieldInteraction}) {
    if (name == BilinearTypeName(t)) return t;
  }
  throw ConfigError("field " + field + ": unknown bilinear type \"" + name +
                    "\" (use field_all, field_each or field_interaction)");
}

const char* BilinearTypeName(BilinearType type) {
  switch (type) {
    case BilinearType::kFieldAll:
      return "field_all";
    case BilinearType::kFieldEach:
      return "field_each";
    case BilinearType::kFieldInteraction:
      return "field_interaction";
  }
  return "?";
}

BilinearInteractionImpl::BilinearInteractionImpl(int64_t num_fields, int64_t embed_dim, BilinearType type)
    : type_(type), num_fields_(num_fields), pairs_(AllFieldPairs(num_fields)) {
  CheckFields("BilinearInteraction", num_fields, embed_dim);
  std::vector<int64_t> shape;
  switch (type_) {
    case BilinearType::kFieldAll:
      shape = {embed_dim, embed_dim};
      break;
    case BilinearType::kFieldEach:
      // Only fields 0..F-2 are ever the left side of a pair. The reference also creates W for
      // the last field, which never receives a gradient; it is left out here.
      shape = {num_fields - 1, embed_dim, embed_dim};
      break;
    case BilinearType::kFieldInteraction:
      shape = {pairs_.size(), embed_dim, embed_dim};
      break;
  }
  weight = register_parameter("weight", torch::empty(shape));
  // nn.Linear(D, D, bias=False)'s default init (kaiming_uniform, a = sqrt(5)).
  const double bound = 1.0 / std::sqrt(static_cast<double>(embed_dim));
  torch::NoGradGuard no_grad;
  weight.uniform_(-bound, bound);
}

torch::Tensor BilinearInteractionImpl::forward(const torch::Tensor& v) {
  CheckInput("BilinearInteraction", v, num_fields_, weight.size(-1));
  if (type_ == BilinearType::kFieldInteraction) return PairsByLeftField(v);
  // W v_i depends only on the field: transform each field once (F rows, not P), then gather.
  torch::Tensor transformed;  // [B, F or F-1, D]
  if (type_ == BilinearType::kFieldAll) {
    transformed = v.matmul(weight.t());
  } else {
    // One batched matmul over the left fields: [F-1, B, D] x [F-1, D, D].
    transformed = torch::bmm(v.narrow(1, 0, num_fields_ - 1).transpose(0, 1), weight.transpose(1, 2)).transpose(0, 1);
  }
  // The contiguous operand first: the product is laid out [B, P, D] contiguously.
  return v.index_select(1, pairs_.right.to(v.device())) * transformed.index_select(1, pairs_.left.to(v.device()));
}

// field_interaction: every pair has its own W_ij, so nothing is shared per field. The pairs of left
// field i are (i, i+1), ..., (i, F-1), consecutive in combinations order: their matrices stacked
// [n D, D] (n = F-1-i) give all W_ij v_i with one GEMM [B, D] x [D, n D], and the F-1 results
// side by side are W_ij v_i for all pairs in order, [B, P, D]. (LibTorch's CPU bmm over the P
// pairs, without batched BLAS, runs P tiny GEMMs with a dispatch each: slower at every size.)
// unbind, not select per field: its backward is one stack, not F-1 zero-filled [B, F, D] grads.
torch::Tensor BilinearInteractionImpl::PairsByLeftField(const torch::Tensor& v) const {
  const int64_t batch = v.size(0), dim = v.size(2);
  const std::vector<torch::Tensor> fields = v.unbind(1);
  std::vector<torch::Tensor> by_left_field;
  by_left_field.reserve(num_fields_ - 1);
  int64_t first_pair = 0;
  for (int64_t i = 0; i + 1 < num_fields_; ++i) {
    const int64_t n = num_fields_ - 1 - i;
    by_left_field.push_back(torch::mm(fields[i], weight.narrow(0, first_pair, n).reshape({n * dim, dim}).t()));
    first_pair += n;
  }
  const torch::Tensor left = torch::cat(by_left_field, 1).view({batch, pairs_.size(), dim});
  return v.index_select(1, pairs_.right.to(v.device())) * left;
}

}  // namespace shardrec::models

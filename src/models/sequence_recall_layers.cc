#include "models/sequence_recall_layers.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "common/error.h"
#include "models/dropout.h"

namespace shardrec::models {

using data::FeatureKind;
using data::Pooling;

// ---------------------------------------------------------------------------------------------
// Features

namespace {

// FeatureSchema::Find lives in the data library, which the model libraries do not link.
int FindFeature(const data::FeatureSchema& schema, const std::string& name) {
  for (size_t i = 0; i < schema.features.size(); ++i)
    if (schema.features[i].name == name) return static_cast<int>(i);
  return -1;
}

}  // namespace

HistoryItemFeatures ResolveHistoryItem(const data::FeatureSchema& schema, const std::string& history_name,
                                       const std::string& item_name, const std::string& field) {
  auto is_history = [](const data::FeatureSpec& f) {
    return f.kind == FeatureKind::kSequence && f.pooling == Pooling::kConcat;
  };
  HistoryItemFeatures out;
  const std::string history_field = field + ".history_feature";
  if (!history_name.empty()) {
    out.history = FindFeature(schema, history_name);
    if (out.history < 0) throw ConfigError("field " + history_field + ": unknown feature \"" + history_name + "\"");
    if (!is_history(schema.features[out.history])) {
      throw ConfigError("field " + history_field + ": feature \"" + history_name +
                        "\" is not a sequence with concat pooling (the history is read position by position)");
    }
  } else {
    for (size_t i = 0; i < schema.features.size(); ++i) {
      if (!is_history(schema.features[i])) continue;
      if (out.history >= 0) {
        throw ConfigError("field " + history_field + ": the schema has several concat-pooled sequences (\"" +
                          schema.features[out.history].name + "\", \"" + schema.features[i].name + "\"); name one");
      }
      out.history = static_cast<int>(i);
    }
    if (out.history < 0) {
      throw ConfigError("field " + history_field +
                        ": the schema has no sequence with concat pooling to use as the item history");
    }
  }
  const data::FeatureSpec& history = schema.features[out.history];

  const std::string item_field = field + ".item_feature";
  if (!item_name.empty()) {
    out.item = FindFeature(schema, item_name);
    if (out.item < 0) throw ConfigError("field " + item_field + ": unknown feature \"" + item_name + "\"");
    if (schema.features[out.item].kind != FeatureKind::kSparse) {
      throw ConfigError("field " + item_field + ": feature \"" + item_name + "\" is not sparse (one item id per row)");
    }
  } else {
    for (size_t i = 0; i < schema.features.size() && out.item < 0; ++i) {
      if (schema.features[i].kind == FeatureKind::kSparse && schema.features[i].table == history.table)
        out.item = static_cast<int>(i);
    }
    if (out.item < 0) {
      throw ConfigError("field " + item_field + ": no sparse feature uses the table of the history \"" + history.name +
                        "\"; name the item-id feature");
    }
  }
  out.history_dim = history.dim;
  out.item_dim = schema.features[out.item].dim;
  out.max_len = history.max_len;
  return out;
}

FeatureGroup ResolveUserFeatures(const data::FeatureSchema& schema, const std::vector<std::string>& names,
                                 const std::string& field) {
  if (names.empty()) return FeatureGroup{};
  return ResolveFeatures(schema, names, FeatureUse::kFlat, field);
}

void RequireConfig(bool ok, const std::string& field, const std::string& what) {
  if (!ok) throw ConfigError("field " + field + ": " + what);
}

std::vector<int> UserTowerFeatures(const data::FeatureSchema& schema, const FeatureGroup& user, int history) {
  std::vector<int> out = user.embedded;
  // Dense features are read through ModelInput::dense; list them by schema index too.
  for (int64_t column : user.dense_columns) {
    for (size_t i = 0; i < schema.features.size(); ++i) {
      if (schema.features[i].kind == FeatureKind::kDense && schema.features[i].dense_index == column)
        out.push_back(static_cast<int>(i));
    }
  }
  out.push_back(history);
  return out;
}

// ---------------------------------------------------------------------------------------------
// History input

History ReadHistory(const ModelInput& input, int history) {
  TORCH_CHECK(history >= 0 && history < static_cast<int>(input.features.size()), "model input has no history feature");
  const FeatureInput& f = input.features[history];
  TORCH_CHECK(f.emb.defined() && f.emb.dim() == 3 && f.mask.defined() && f.lengths.defined(),
              "history: expected a concat-pooled sequence [B, L, D] with mask and lengths");
  History h{f.emb, f.mask, f.lengths};
  const int64_t L = f.emb.size(1);
  const int64_t longest = L == 0 || f.lengths.numel() == 0 ? 0 : std::min(L, f.lengths.max().item<int64_t>());
  if (longest < L) {
    const int64_t keep = std::max<int64_t>(longest, 1);  // one column even for all-empty batches
    h.emb = h.emb.narrow(1, L - keep, keep);
    h.mask = h.mask.narrow(1, L - keep, keep);
  }
  return h;
}

torch::Tensor ReadItems(const ModelInput& input, int item) {
  TORCH_CHECK(item >= 0 && item < static_cast<int>(input.features.size()) && input.features[item].emb.defined(),
              "model input has no item embedding");
  const torch::Tensor& e = input.features[item].emb;
  TORCH_CHECK(e.dim() == 2, "item: expected an embedding [N, D], got ", e.sizes());
  return e;
}

torch::Tensor LeftAlign(const torch::Tensor& x, const torch::Tensor& lengths) {
  const int64_t B = x.size(0), L = x.size(1);
  // Column j of the result reads column (j + L - len) mod L: the real entries for j < len, and
  // for j >= len the leading (padding) columns.
  torch::Tensor shift = (L - lengths.clamp(0, L)).unsqueeze(1);                      // [B, 1]
  torch::Tensor index = torch::remainder(torch::arange(L, lengths.options()).unsqueeze(0) + shift, L);  // [B, L]
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[0] = B;
  shape[1] = L;
  index = index.view(shape).expand(x.sizes());
  return x.gather(1, index);
}

torch::Tensor MaskedSoftmax(const torch::Tensor& logits, const torch::Tensor& mask, int64_t dim) {
  // A large finite negative instead of -inf: a slice without any real entry gives a uniform
  // softmax (not NaN), which the multiplication by the mask then zeroes.
  const double lowest = -std::numeric_limits<float>::max() / 2;
  return torch::softmax(logits.masked_fill(mask.logical_not(), lowest), dim) * mask.to(logits.dtype());
}

// ---------------------------------------------------------------------------------------------
// Capsule routing

CapsuleRoutingImpl::CapsuleRoutingImpl(CapsuleRoutingOptions options) : options_(options) {
  TORCH_CHECK(options_.input_dim > 0 && options_.capsule_dim > 0 && options_.num_interests > 0 && options_.iterations > 0,
              "capsule routing: dims, num_interests and iterations must be > 0");
  bilinear = register_module(
      "bilinear", torch::nn::Linear(torch::nn::LinearOptions(options_.input_dim, options_.capsule_dim).bias(false)));
}

namespace {

// squash(s) = |s|^2 / (1 + |s|^2) * s / sqrt(|s|^2 + 1e-9), over the last dim (the reference's
// scalar_factor, 1e-9 included).
torch::Tensor Squash(const torch::Tensor& s) {
  torch::Tensor n = s.square().sum(-1, true);
  return n / (1 + n) / torch::sqrt(n + 1e-9) * s;
}

}  // namespace

torch::Tensor CapsuleRoutingImpl::forward(const torch::Tensor& history, const torch::Tensor& mask,
                                          const torch::Tensor& initial_logits) {
  const int64_t B = history.size(0), L = history.size(1), I = options_.num_interests;
  TORCH_CHECK(initial_logits.dim() == 3 && initial_logits.size(1) == I && initial_logits.size(2) == L,
              "capsule routing: initial logits must be [B|1, ", I, ", ", L, "], got ", initial_logits.sizes());
  torch::Tensor u = bilinear->forward(history);  // [B, L, H]; every interest sees the same map
  torch::Tensor u_routing = u.detach();
  // The softmax runs over positions (dim 2 of [B, I, L]) or interests (dim 1); its mask is the
  // positions' either way.
  const int64_t softmax_dim = options_.softmax == RoutingSoftmax::kPositions ? 2 : 1;
  torch::Tensor real = mask.unsqueeze(1).expand({B, I, L});
  torch::Tensor logits = initial_logits.detach().expand({B, I, L});
  torch::Tensor interests;
  for (int64_t it = 0; it < options_.iterations; ++it) {
    torch::Tensor w = MaskedSoftmax(logits, real, softmax_dim);  // [B, I, L]
    const bool last = it + 1 == options_.iterations;
    interests = Squash(torch::bmm(w, last ? u : u_routing));  // [B, I, H]
    if (!last) logits = logits + torch::bmm(interests, u_routing.transpose(1, 2));  // agreement [B, I, L]
  }
  return interests;
}

// ---------------------------------------------------------------------------------------------
// Self-attention block

SelfAttentionBlockImpl::SelfAttentionBlockImpl(SelfAttentionBlockOptions options) : options_(options) {
  const int64_t D = options_.dim;
  TORCH_CHECK(D > 0 && options_.num_heads > 0 && D % options_.num_heads == 0 && options_.ffn_dim > 0,
              "self-attention block: dim must be a positive multiple of num_heads, ffn_dim > 0");
  auto norm = torch::nn::LayerNormOptions({D}).eps(1e-8);
  attention_norm = register_module("attention_norm", torch::nn::LayerNorm(norm));
  ffn_norm = register_module("ffn_norm", torch::nn::LayerNorm(norm));
  // torch's MultiheadAttention init: xavier-uniform in-projection, zero biases.
  in_proj_weight = register_parameter("in_proj_weight", torch::empty({3 * D, D}));
  in_proj_bias = register_parameter("in_proj_bias", torch::zeros({3 * D}));
  torch::nn::init::xavier_uniform_(in_proj_weight);
  out_proj = register_module("out_proj", torch::nn::Linear(D, D));
  {
    torch::NoGradGuard no_grad;
    out_proj->bias.zero_();
  }
  // The reference's Conv1d(D, D, kernel 1) pair is a per-position Linear.
  ffn1 = register_module("ffn1", torch::nn::Linear(D, options_.ffn_dim));
  ffn2 = register_module("ffn2", torch::nn::Linear(options_.ffn_dim, D));
}

torch::Tensor CausalAttentionBias(const torch::Tensor& mask, int64_t num_queries, int64_t num_heads) {
  const int64_t B = mask.size(0), L = mask.size(1);
  auto index = torch::TensorOptions(torch::kLong).device(mask.device());
  torch::Tensor q = torch::arange(L - num_queries, L, index).unsqueeze(1);  // [Lq, 1]
  torch::Tensor k = torch::arange(L, index).unsqueeze(0);                   // [1, L]
  torch::Tensor allowed = k.le(q).unsqueeze(0).logical_and(mask.unsqueeze(1)).logical_or(k.eq(q).unsqueeze(0));  // [B, Lq, L]
  torch::Tensor bias = torch::zeros({B, 1, num_queries, L}, torch::TensorOptions(torch::kFloat32).device(mask.device()));
  bias.masked_fill_(allowed.logical_not().unsqueeze(1), -std::numeric_limits<float>::infinity());
  return bias.expand({B, num_heads, num_queries, L}).reshape({B * num_heads, num_queries, L});
}

torch::Tensor SelfAttentionBlockImpl::Attend(const torch::Tensor& q_in, const torch::Tensor& x, const torch::Tensor& bias) {
  const int64_t B = x.size(0), L = x.size(1), Lq = q_in.size(1), D = options_.dim, h = options_.num_heads,
                dh = D / h;
  torch::Tensor q = torch::nn::functional::linear(q_in, in_proj_weight.narrow(0, 0, D), in_proj_bias.narrow(0, 0, D));
  torch::Tensor kv = torch::nn::functional::linear(x, in_proj_weight.narrow(0, D, 2 * D), in_proj_bias.narrow(0, D, 2 * D));
  // Heads batch-major, contiguous [B * h, len, dh] (batched products of small matrices run several
  // times faster on contiguous operands than on transposed views).
  auto heads = [&](const torch::Tensor& t, int64_t len) {
    return t.view({B, len, h, dh}).transpose(1, 2).reshape({B * h, len, dh});
  };
  q = heads(q, Lq);
  torch::Tensor k_t = kv.narrow(2, 0, D).view({B, L, h, dh}).permute({0, 2, 3, 1}).reshape({B * h, dh, L});
  torch::Tensor v = heads(kv.narrow(2, D, D), L);
  // scores = q k^T / sqrt(dh) + mask, in one op.
  torch::Tensor scores = torch::baddbmm(bias, q, k_t, /*beta=*/1, /*alpha=*/1 / std::sqrt(static_cast<double>(dh)));
  torch::Tensor weights = torch::softmax(scores, -1);  // [B * h, Lq, L]
  if (is_training() && options_.dropout > 0) weights = Dropout(weights, options_.dropout);
  torch::Tensor out = torch::bmm(weights, v).view({B, h, Lq, dh}).transpose(1, 2).reshape({B, Lq, D});
  return out_proj->forward(out);
}

torch::Tensor SelfAttentionBlockImpl::FeedForward(const torch::Tensor& x) {
  const bool drop = is_training() && options_.dropout > 0;
  torch::Tensor h = ffn1->forward(x);
  if (drop) h = Dropout(h, options_.dropout);
  h = ffn2->forward(torch::relu(h));
  if (drop) h = Dropout(h, options_.dropout);
  return x + h;
}

torch::Tensor SelfAttentionBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& mask, const torch::Tensor& bias) {
  torch::Tensor q = attention_norm->forward(x);
  torch::Tensor y = q + Attend(q, x, bias);
  y = FeedForward(ffn_norm->forward(y));
  return y * mask.unsqueeze(2).to(y.dtype());
}

torch::Tensor SelfAttentionBlockImpl::ForwardLast(const torch::Tensor& x, const torch::Tensor& mask, const torch::Tensor& bias) {
  const int64_t L = x.size(1);
  torch::Tensor q = attention_norm->forward(x.narrow(1, L - 1, 1));
  torch::Tensor y = q + Attend(q, x, bias);
  y = FeedForward(ffn_norm->forward(y));
  return y * mask.narrow(1, L - 1, 1).unsqueeze(2).to(y.dtype());
}

}  // namespace shardrec::models

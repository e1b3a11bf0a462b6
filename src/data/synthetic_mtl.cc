// Census-like multi-task data: D1..D6 dense in [0, 1], C1..C12 categorical codes, and two labels
// click and purchase, where purchase = 1 only if click = 1 (ESMM-compatible).
//
// Planted signal: a shared part (C1-C4, C8, D1, D2) moves both tasks; C5, C6, C9 and D3 only
// the click; C7, C10-C12, D4 and D5 only the purchase given a click.
#include <algorithm>
#include <array>
#include <vector>

#include "data/synthetic_layout.h"
#include "data/synthetic_util.h"

namespace shardrec::data {
namespace {

using synthetic::Key;

constexpr int kNumDense = 6;
constexpr int kNumCat = 12;
constexpr std::array<int64_t, kNumCat> kCardinality = {2, 9, 52, 47, 17, 7, 10, 1000, 50, 3, 6, 24};
enum Task { kShared, kClick, kPurchase, kNone };
constexpr std::array<Task, kNumCat> kCatTask = {kShared, kShared, kShared, kShared, kClick, kClick,
                                                kPurchase, kShared, kClick, kPurchase, kPurchase, kPurchase};
constexpr std::array<double, kNumCat> kCatWeight = {0.4, 0.5, 0.6, 0.5, 0.6, 0.5, 0.6, 0.6, 0.5, 0.5, 0.5, 0.6};
constexpr std::array<double, kNumDense> kDenseWeight = {0.5, -0.4, 0.4, 0.5, -0.4, 0.0};
constexpr std::array<Task, kNumDense> kDenseTask = {kShared, kShared, kClick, kPurchase, kPurchase, kNone};
constexpr double kClickRate = 0.3;
constexpr double kPurchaseGivenClick = 0.3;

class MtlLayout : public SyntheticLayout {
 public:
  explicit MtlLayout(const GeneratorOptions& o) : options_(o) {
    for (int f = 0; f < kNumCat; ++f) zipf_.emplace_back(std::min(kCardinality[static_cast<size_t>(f)], std::max<int64_t>(o.vocab_size, 2)), 1.1);
    std::vector<double> click_logits, purchase_logits;
    Row row;
    for (int i = 0; i < 8192; ++i) {
      Rng rng(Key(o.seed, 0xca11b, static_cast<uint64_t>(i)));
      Draw(rng, &row);
      click_logits.push_back(Logit(row, kClick));
      purchase_logits.push_back(Logit(row, kPurchase));
    }
    click_bias_ = synthetic::CalibrateBias(click_logits, kClickRate);
    purchase_bias_ = synthetic::CalibrateBias(purchase_logits, kPurchaseGivenClick);
  }

  std::string Header() const override {
    std::string h;
    for (int j = 1; j <= kNumDense; ++j) h += "D" + std::to_string(j) + ",";
    for (int f = 1; f <= kNumCat; ++f) h += "C" + std::to_string(f) + ",";
    return h + "click,purchase";
  }

  double AppendRow(int64_t index, std::string* out) const override {
    Rng rng(Key(options_.seed, 0x3717, static_cast<uint64_t>(index)));
    Row row;
    Draw(rng, &row);
    const double p_click = synthetic::Sigmoid(Logit(row, kClick) + click_bias_);
    const double p_purchase = synthetic::Sigmoid(Logit(row, kPurchase) + purchase_bias_);
    const bool click = rng.Bernoulli(p_click);
    const bool purchase = rng.Bernoulli(p_purchase) && click;
    for (int j = 0; j < kNumDense; ++j) {
      synthetic::AppendFixed(out, row.dense[j], 4);
      out->push_back(',');
    }
    for (int f = 0; f < kNumCat; ++f) {
      synthetic::AppendInt(out, row.code[f]);
      out->push_back(',');
    }
    out->push_back(click ? '1' : '0');
    out->push_back(',');
    out->push_back(purchase ? '1' : '0');
    out->push_back('\n');
    return p_click;
  }

 private:
  struct Row {
    double z[kNumDense];
    double dense[kNumDense];
    int64_t code[kNumCat];  // 0-based category codes
  };

  void Draw(Rng& rng, Row* row) const {
    for (int j = 0; j < kNumDense; ++j) {
      row->z[j] = synthetic::Normal(rng);
      row->dense[j] = std::clamp(0.5 + 0.18 * row->z[j], 0.0, 1.0);
    }
    for (int f = 0; f < kNumCat; ++f) row->code[f] = zipf_[static_cast<size_t>(f)].Sample(rng) - 1;
  }

  double Weight(int f, int64_t code, uint64_t salt) const {
    return kCatWeight[static_cast<size_t>(f)] / (1.0 + static_cast<double>(code) / 100.0) *
           synthetic::HashNormal(Key(options_.seed, salt, static_cast<uint64_t>(f), static_cast<uint64_t>(code)));
  }

  // The shared part enters the click fully and the purchase scaled by 0.8.
  double Logit(const Row& row, Task task) const {
    double shared = 0, own = 0;
    for (int f = 0; f < kNumCat; ++f) {
      const Task t = kCatTask[static_cast<size_t>(f)];
      if (t == kShared) shared += Weight(f, row.code[f], 0x5a7ed);
      if (t == task) own += Weight(f, row.code[f], 0x0417 + static_cast<uint64_t>(task));
    }
    for (int j = 0; j < kNumDense; ++j) {
      const Task t = kDenseTask[static_cast<size_t>(j)];
      const double x = kDenseWeight[static_cast<size_t>(j)] * (row.dense[j] - 0.5) / 0.18;
      if (t == kShared) shared += x;
      if (t == task) own += x;
    }
    return (task == kClick ? 1.0 : 0.8) * shared + own;
  }

  GeneratorOptions options_;
  std::vector<synthetic::Zipf> zipf_;
  double click_bias_ = 0, purchase_bias_ = 0;
};

}  // namespace

std::unique_ptr<SyntheticLayout> MakeMtlLayout(const GeneratorOptions& options) {
  return std::make_unique<MtlLayout>(options);
}

}  // namespace shardrec::data

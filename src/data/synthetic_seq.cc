// Amazon-like behaviour data for DIN-style models: user, target item and category, the user's
// click history ('|'-separated, most recent last), a random negative history, label.
//
// Items belong to categories (item i is in category (i - 1) % C + 1; lower ids in a category are
// more popular). Each user prefers a few categories, and most history items come from them.
// Planted signal: the target is clicked more often when its category is one the user prefers,
// and more so when it appears in the recent history; popular items are clicked more.
#include <algorithm>
#include <array>
#include <vector>

#include "data/synthetic_layout.h"
#include "data/synthetic_util.h"

namespace shardrec::data {
namespace {

using synthetic::Key;

constexpr int kPreferred = 3;
constexpr int kMaxHistory = 50;
constexpr int kRecent = 10;
constexpr double kPositiveRate = 0.4;

class SeqLayout : public SyntheticLayout {
 public:
  explicit SeqLayout(const GeneratorOptions& o)
      : options_(o),
        num_items_(std::max<int64_t>(o.vocab_size, 10)),
        num_cates_(std::clamp<int64_t>(num_items_ / 50, 5, 1000)),
        num_users_(std::clamp<int64_t>(o.rows / 20, 100, 1000000)),
        cate_zipf_(num_cates_, 0.8),
        item_zipf_((num_items_ + num_cates_ - 1) / num_cates_, 0.9) {
    std::vector<double> logits;
    Row row;
    for (int i = 0; i < 4096; ++i) {
      Rng rng(Key(o.seed, 0xca11b, static_cast<uint64_t>(i)));
      Draw(rng, &row);
      logits.push_back(Logit(row));
    }
    bias_ = synthetic::CalibrateBias(logits, kPositiveRate);
  }

  std::string Header() const override {
    return "user_id,item_id,cate_id,hist_item_id,hist_cate_id,neg_hist_item_id,neg_hist_cate_id,label";
  }

  double AppendRow(int64_t index, std::string* out) const override {
    Rng rng(Key(options_.seed, 0x5e9, static_cast<uint64_t>(index)));
    Row row;
    Draw(rng, &row);
    const double p = synthetic::Sigmoid(Logit(row) + bias_);
    const bool label = rng.Bernoulli(p);
    std::array<int64_t, kMaxHistory> neg;
    for (int i = 0; i < row.length; ++i) neg[static_cast<size_t>(i)] = 1 + static_cast<int64_t>(rng.Below(static_cast<uint64_t>(num_items_)));

    using synthetic::AppendInt;
    AppendInt(out, row.user);
    out->push_back(',');
    AppendInt(out, row.target);
    out->push_back(',');
    AppendInt(out, CateOf(row.target));
    auto append_list = [&](const int64_t* items, bool cates) {
      out->push_back(',');
      for (int i = 0; i < row.length; ++i) {
        if (i) out->push_back('|');
        AppendInt(out, cates ? CateOf(items[i]) : items[i]);
      }
    };
    append_list(row.history.data(), false);
    append_list(row.history.data(), true);
    append_list(neg.data(), false);
    append_list(neg.data(), true);
    out->push_back(',');
    out->push_back(label ? '1' : '0');
    out->push_back('\n');
    return p;
  }

 private:
  struct Row {
    int64_t user = 0;
    std::array<int64_t, kPreferred> preferred{};
    int length = 0;
    std::array<int64_t, kMaxHistory> history{};
    int64_t target = 0;
  };

  int64_t CateOf(int64_t item) const { return (item - 1) % num_cates_ + 1; }
  int64_t PopularityRank(int64_t item) const { return (item - 1) / num_cates_; }

  // An item of category `cate`, popular ones more likely.
  int64_t ItemIn(int64_t cate, Rng& rng) const {
    for (;;) {
      const int64_t item = (item_zipf_.Sample(rng) - 1) * num_cates_ + cate;
      if (item <= num_items_) return item;
    }
  }
  int64_t RandomItem(Rng& rng) const { return ItemIn(cate_zipf_.Sample(rng), rng); }

  void Draw(Rng& rng, Row* row) const {
    row->user = 1 + static_cast<int64_t>(rng.Below(static_cast<uint64_t>(num_users_)));
    Rng user_rng(Key(options_.seed, 0x05e4, static_cast<uint64_t>(row->user)));
    for (int64_t& c : row->preferred) c = cate_zipf_.Sample(user_rng);
    row->length = 1 + static_cast<int>(rng.Below(kMaxHistory));
    for (int i = 0; i < row->length; ++i) {
      row->history[static_cast<size_t>(i)] =
          rng.Bernoulli(0.8) ? ItemIn(row->preferred[rng.Below(kPreferred)], rng) : RandomItem(rng);
    }
    row->target = rng.Bernoulli(0.5) ? ItemIn(row->preferred[rng.Below(kPreferred)], rng) : RandomItem(rng);
  }

  double Logit(const Row& row) const {
    const int64_t cate = CateOf(row.target);
    const bool preferred = std::find(row.preferred.begin(), row.preferred.end(), cate) != row.preferred.end();
    int same = 0, recent_same = 0;
    const int recent = std::min(row.length, kRecent);
    for (int i = 0; i < row.length; ++i) {
      const bool s = CateOf(row.history[static_cast<size_t>(i)]) == cate;
      same += s;
      if (i >= row.length - recent) recent_same += s;
    }
    const double popularity =
        1.0 - std::log1p(static_cast<double>(PopularityRank(row.target))) / std::log1p(static_cast<double>(item_zipf_.size()));
    return 1.0 * preferred + 1.5 * recent_same / recent + 0.5 * same / row.length + 0.8 * popularity +
           0.3 * synthetic::HashNormal(Key(options_.seed, 0x17e3, static_cast<uint64_t>(row.target)));
  }

  GeneratorOptions options_;
  int64_t num_items_, num_cates_, num_users_;
  synthetic::Zipf cate_zipf_, item_zipf_;
  double bias_ = 0;
};

}  // namespace

std::unique_ptr<SyntheticLayout> MakeSeqLayout(const GeneratorOptions& options) {
  return std::make_unique<SeqLayout>(options);
}

}  // namespace shardrec::data

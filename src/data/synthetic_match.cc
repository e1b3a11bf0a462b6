// MovieLens-like data for matching (two-tower) models: a user with demographics, the user's
// earlier movies ('|'-separated, most recent last), a candidate movie with its genre, label.
//
// Movie m has genre (m - 1) % 18 + 1; lower ids in a genre are more popular. A user's first
// preferred genre mostly follows their (gender, age) group, the second is personal. Half the rows
// are the user's next movie (label 1), mostly from the preferred genres; the other half are
// popularity-weighted exposures the user did not pick (label 0).
#include <algorithm>
#include <array>

#include "data/synthetic_layout.h"
#include "data/synthetic_util.h"

namespace shardrec::data {
namespace {

using synthetic::Key;

constexpr int64_t kGenres = 18;
constexpr int kMaxHistory = 30;
constexpr std::array<int, 7> kAges = {1, 18, 25, 35, 45, 50, 56};
constexpr std::array<double, 7> kAgeCdf = {0.04, 0.22, 0.57, 0.77, 0.87, 0.95, 1.0};

class MatchLayout : public SyntheticLayout {
 public:
  explicit MatchLayout(const GeneratorOptions& o)
      : options_(o),
        num_items_(std::max<int64_t>(o.vocab_size, kGenres)),
        num_users_(std::clamp<int64_t>(o.rows / 10, 100, 1000000)),
        genre_zipf_(kGenres, 0.7),
        item_zipf_((num_items_ + kGenres - 1) / kGenres, 0.9) {}

  std::string Header() const override {
    return "user_id,gender,age,occupation,zip,hist_movie_id,movie_id,cate_id,label";
  }

  double AppendRow(int64_t index, std::string* out) const override {
    Rng rng(Key(options_.seed, 0x3a7c, static_cast<uint64_t>(index)));
    const int64_t user = 1 + static_cast<int64_t>(rng.Below(static_cast<uint64_t>(num_users_)));
    Rng user_rng(Key(options_.seed, 0x05e4, static_cast<uint64_t>(user)));
    const bool female = user_rng.Bernoulli(0.3);
    const double a = user_rng.Uniform();
    const size_t age = static_cast<size_t>(std::find_if(kAgeCdf.begin(), kAgeCdf.end(), [&](double c) { return a < c; }) - kAgeCdf.begin());
    const int64_t occupation = static_cast<int64_t>(user_rng.Below(21));
    const int64_t zip = 10000 + static_cast<int64_t>(user_rng.Below(90000));
    const int64_t group_genre = 1 + static_cast<int64_t>(Key(options_.seed, 0x6e7, female, age) % kGenres);
    const std::array<int64_t, 2> preferred = {user_rng.Bernoulli(0.7) ? group_genre : genre_zipf_.Sample(user_rng),
                                              genre_zipf_.Sample(user_rng)};

    const int length = 1 + static_cast<int>(rng.Below(kMaxHistory));
    std::array<int64_t, kMaxHistory> history;
    for (int i = 0; i < length; ++i) {
      history[static_cast<size_t>(i)] = rng.Bernoulli(0.8) ? ItemIn(preferred[rng.Below(2)], rng) : RandomItem(rng);
    }
    const bool label = rng.Bernoulli(0.5);
    int64_t movie;
    if (label) {
      movie = rng.Bernoulli(0.85) ? ItemIn(preferred[rng.Below(2)], rng) : RandomItem(rng);
    } else {
      movie = RandomItem(rng);
    }

    using synthetic::AppendInt;
    AppendInt(out, user);
    out->append(female ? ",F," : ",M,");
    AppendInt(out, kAges[age]);
    out->push_back(',');
    AppendInt(out, occupation);
    out->push_back(',');
    AppendInt(out, zip);
    out->push_back(',');
    for (int i = 0; i < length; ++i) {
      if (i) out->push_back('|');
      AppendInt(out, history[static_cast<size_t>(i)]);
    }
    out->push_back(',');
    AppendInt(out, movie);
    out->push_back(',');
    AppendInt(out, (movie - 1) % kGenres + 1);
    out->push_back(',');
    out->push_back(label ? '1' : '0');
    out->push_back('\n');
    return -1;
  }

 private:
  int64_t ItemIn(int64_t genre, Rng& rng) const {
    for (;;) {
      const int64_t item = (item_zipf_.Sample(rng) - 1) * kGenres + genre;
      if (item <= num_items_) return item;
    }
  }
  int64_t RandomItem(Rng& rng) const { return ItemIn(genre_zipf_.Sample(rng), rng); }

  GeneratorOptions options_;
  int64_t num_items_, num_users_;
  synthetic::Zipf genre_zipf_, item_zipf_;
};

}  // namespace

std::unique_ptr<SyntheticLayout> MakeMatchLayout(const GeneratorOptions& options) {
  return std::make_unique<MatchLayout>(options);
}

}  // namespace shardrec::data

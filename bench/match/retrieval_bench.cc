// Retrieval time of top-K over a large catalogue: exact (train::ExactTopK: matrix products in
// blocks, tie-broken top-K merged block by block) against faiss indexes (train::FaissTopK: Flat =
// exact inner product, IVF = approximate), on random unit vectors (the shape of a recall model's
// L2-normalised towers). Prints a markdown table and writes JSON.
//
//   match_retrieval_bench [--items 1000000] [--users 10000] [--dim 64] [--k 100] [--threads 2]
//                         [--faiss "Flat;IVF1024,Flat"] [--nprobe 16,64] [--query-batch 1024]
//                         [--item-block N] [--out FILE]
//
// Recall of an approximate index = |its top-K ∩ exact top-K| / K, averaged over the users.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <unordered_set>
#include <vector>

#include "train/retrieval.h"

namespace {

using shardrec::train::TopK;

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  // ';' separates index descriptions (which contain commas): "Flat;IVF1024,Flat".
  while (std::getline(in, cur, ';'))
    if (!cur.empty()) out.push_back(cur);
  return out;
}

double Overlap(const TopK& a, const TopK& exact) {
  torch::Tensor x = a.items.contiguous(), y = exact.items.contiguous();
  const int64_t q = x.size(0), k = x.size(1);
  const int64_t* xp = x.data_ptr<int64_t>();
  const int64_t* yp = y.data_ptr<int64_t>();
  double sum = 0;
  for (int64_t r = 0; r < q; ++r) {
    std::unordered_set<int64_t> truth(yp + r * k, yp + (r + 1) * k);
    int64_t hit = 0;
    for (int64_t j = 0; j < k; ++j) hit += truth.count(xp[r * k + j]);
    sum += static_cast<double>(hit) / static_cast<double>(k);
  }
  return sum / static_cast<double>(q);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t items = 1000000, users = 10000, dim = 64, k = 100, query_batch = 1024, item_block = 0;
  int threads = 2;
  std::string faiss_indexes = "Flat;IVF1024,Flat", nprobes = "16,64", out_path = "match_retrieval_bench.json";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--items") items = std::stoll(v);
    else if (a == "--users") users = std::stoll(v);
    else if (a == "--dim") dim = std::stoll(v);
    else if (a == "--k") k = std::stoll(v);
    else if (a == "--threads") threads = std::stoi(v);
    else if (a == "--faiss") faiss_indexes = v;
    else if (a == "--nprobe") nprobes = v;
    else if (a == "--query-batch") query_batch = std::stoll(v);
    else if (a == "--item-block") item_block = std::stoll(v);
    else if (a == "--out") out_path = v;
    else {
      std::cerr << "unknown flag " << a << "\n";
      return 2;
    }
  }
  at::set_num_threads(threads);
  torch::manual_seed(1);
  torch::Tensor item_vectors = torch::randn({items, dim});
  item_vectors /= item_vectors.norm(2, 1, true);
  torch::Tensor user_vectors = torch::randn({users, dim});
  user_vectors /= user_vectors.norm(2, 1, true);

  struct Row {
    std::string method;
    double build_s, search_s, recall;
  };
  std::vector<Row> rows;
  auto t0 = std::chrono::steady_clock::now();
  TopK exact = item_block > 0 ? shardrec::train::ExactTopK(item_vectors, user_vectors, k, nullptr, query_batch, item_block)
                              : shardrec::train::ExactTopK(item_vectors, user_vectors, k, nullptr, query_batch);
  const double exact_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rows.push_back({"exact (ExactTopK)", 0, exact_s, 1.0});
  std::cerr << "exact: " << exact_s << " s\n";

  if (shardrec::train::FaissAvailable()) {
    for (const std::string& desc : Split(faiss_indexes)) {
      std::vector<int> probes = {1};
      if (desc.rfind("IVF", 0) == 0) {
        probes.clear();
        std::istringstream in(nprobes);
        std::string p;
        while (std::getline(in, p, ',')) probes.push_back(std::stoi(p));
      }
      for (int nprobe : probes) {
        std::pair<double, double> seconds;
        TopK got = shardrec::train::FaissTopK(item_vectors, user_vectors, k, nullptr, desc, nprobe, query_batch, &seconds);
        const std::string name = "faiss " + desc + (desc.rfind("IVF", 0) == 0 ? " nprobe " + std::to_string(nprobe) : "");
        rows.push_back({name, seconds.first, seconds.second, Overlap(got, exact)});
        std::cerr << name << ": build " << seconds.first << " s, search " << seconds.second << " s\n";
      }
    }
  } else {
    std::cerr << "this build has no faiss: exact only\n";
  }

  std::printf("| method | index build s | search s | total s | recall@%lld vs exact |\n|---|---|---|---|---|\n",
              static_cast<long long>(k));
  for (const Row& r : rows)
    std::printf("| %s | %.2f | %.2f | %.2f | %.4f |\n", r.method.c_str(), r.build_s, r.search_s, r.build_s + r.search_s, r.recall);
  std::ofstream out(out_path);
  out << "{\"items\": " << items << ", \"users\": " << users << ", \"dim\": " << dim << ", \"k\": " << k << ", \"threads\": " << threads
      << ", \"results\": [";
  for (size_t i = 0; i < rows.size(); ++i)
    out << (i ? ", " : "") << "{\"method\": \"" << rows[i].method << "\", \"build_s\": " << rows[i].build_s
        << ", \"search_s\": " << rows[i].search_s << ", \"recall_vs_exact\": " << rows[i].recall << "}";
  out << "]}\n";
  return 0;
}

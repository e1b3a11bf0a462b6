#pragma once
// Training progress on stderr: a bar (samples/s, loss, ETA) on a terminal, plain log lines
// otherwise (CI logs, files), nothing when quiet.
#include <chrono>
#include <cstdint>
#include <string>

namespace shardrec::train {

class Progress {
 public:
  enum class Mode { kAuto, kBar, kLines, kQuiet };

  // `expected_samples` drives the ETA; 0 when unknown.
  Progress(Mode mode, std::string label, int64_t expected_samples, int log_every);

  // Cumulative samples of this phase and the loss of the latest step.
  void Update(int64_t step, int64_t samples, double loss);
  // Ends the bar line (if any) and prints `summary` as a log line.
  void Finish(const std::string& summary);

 private:
  Mode mode_;
  std::string label_;
  int64_t expected_;
  int log_every_;
  double smoothed_loss_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// Timestamped log line on stderr.
void LogLine(const std::string& text);

}  // namespace shardrec::train

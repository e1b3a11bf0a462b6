#include "train/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <ctime>

namespace shardrec::train {

namespace {

std::string Clock(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  int s = static_cast<int>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%02d:%02d", s / 60, s % 60);
  return buf;
}

}  // namespace

void LogLine(const std::string& text) {
  std::time_t now = std::time(nullptr);
  char ts[32];
  std::strftime(ts, sizeof ts, "%H:%M:%S", std::localtime(&now));
  std::fprintf(stderr, "[%s] %s\n", ts, text.c_str());
  std::fflush(stderr);
}

Progress::Progress(Mode mode, std::string label, int64_t expected_samples, int log_every)
    : mode_(mode), label_(std::move(label)), expected_(expected_samples), log_every_(log_every > 0 ? log_every : 50) {
  if (mode_ == Mode::kAuto) mode_ = isatty(STDERR_FILENO) ? Mode::kBar : Mode::kLines;
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

void Progress::Update(int64_t step, int64_t samples, double loss) {
  smoothed_loss_ = smoothed_loss_ < 0 ? loss : 0.95 * smoothed_loss_ + 0.05 * loss;
  if (mode_ == Mode::kQuiet) return;
  auto now = std::chrono::steady_clock::now();
  double elapsed = std::chrono::duration<double>(now - start_).count();
  double rate = elapsed > 0 ? samples / elapsed : 0;
  double eta = expected_ > 0 && rate > 0 ? (expected_ - samples) / rate : NAN;
  char line[256];
  if (mode_ == Mode::kBar) {
    if (std::chrono::duration<double>(now - last_draw_).count() < 0.2) return;
    last_draw_ = now;
    const int width = 24;
    double frac = expected_ > 0 ? std::min(1.0, static_cast<double>(samples) / expected_) : 0;
    std::string bar(static_cast<size_t>(frac * width), '#');
    bar.resize(width, '.');
    std::snprintf(line, sizeof line, "\r%s [%s] step %lld  %.0f samples/s  loss %.4f  ETA %s\033[K", label_.c_str(),
                  bar.c_str(), static_cast<long long>(step), rate, smoothed_loss_, Clock(eta).c_str());
    std::fputs(line, stderr);
    std::fflush(stderr);
  } else if (step % log_every_ == 0) {
    std::snprintf(line, sizeof line, "%s step %lld  samples %lld  %.0f samples/s  loss %.4f  ETA %s", label_.c_str(),
                  static_cast<long long>(step), static_cast<long long>(samples), rate, smoothed_loss_, Clock(eta).c_str());
    LogLine(line);
  }
}

void Progress::Finish(const std::string& summary) {
  if (mode_ == Mode::kBar) std::fputs("\r\033[K", stderr);
  if (mode_ != Mode::kQuiet) LogLine(summary);
}

}  // namespace shardrec::train

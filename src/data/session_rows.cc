#include "data/session_rows.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "common/error.h"

namespace shardrec::data {
namespace {

struct Click {
  int64_t session;
  int64_t item;
  int64_t time;   // Diginetica: days since 1970-01-01; Yoochoose: ms since the epoch
  int64_t within; // Diginetica: timeframe (ms into the session); Yoochoose: 0
  int64_t order;  // position in the input: keeps equal times in file order
};

[[noreturn]] void Fail(const std::string& path, int64_t line, const std::string& what) {
  throw DataError(path + ":" + std::to_string(line) + ": " + what);
}

bool ParseInt(std::string_view s, int64_t* out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// "YYYY-MM-DD" -> days since the epoch.
bool ParseDate(std::string_view s, int64_t* days) {
  int64_t y, m, d;
  if (s.size() != 10 || s[4] != '-' || s[7] != '-' || !ParseInt(s.substr(0, 4), &y) || !ParseInt(s.substr(5, 2), &m) ||
      !ParseInt(s.substr(8, 2), &d) || m < 1 || m > 12 || d < 1 || d > 31)
    return false;
  *days = DaysFromCivil(y, m, d);
  return true;
}

// "YYYY-MM-DDTHH:MM:SS[.fff]Z" -> ms since the epoch.
bool ParseTimestamp(std::string_view s, int64_t* ms) {
  int64_t days, h, mi, sec, frac = 0;
  if (s.size() < 20 || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s.back() != 'Z' || !ParseDate(s.substr(0, 10), &days) ||
      !ParseInt(s.substr(11, 2), &h) || !ParseInt(s.substr(14, 2), &mi) || !ParseInt(s.substr(17, 2), &sec))
    return false;
  std::string_view rest = s.substr(19, s.size() - 20);  // "" or ".fff"
  if (!rest.empty()) {
    if (rest[0] != '.' || rest.size() < 2) return false;
    std::string_view digits = rest.substr(1, std::min<size_t>(3, rest.size() - 1));
    if (!ParseInt(digits, &frac)) return false;
    for (size_t k = digits.size(); k < 3; ++k) frac *= 10;
  }
  *ms = ((days * 24 + h) * 60 + mi) * 60000 + sec * 1000 + frac;
  return true;
}

std::vector<std::string_view> Split(std::string_view line, char delimiter) {
  std::vector<std::string_view> fields;
  size_t start = 0;
  for (;;) {
    const size_t end = line.find(delimiter, start);
    fields.push_back(line.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return fields;
    start = end + 1;
  }
}

void ReadClicks(const std::string& path, ClickLogFormat format, std::vector<Click>* clicks) {
  std::ifstream in(path);
  if (!in) throw UserError("cannot read click log " + path);
  const bool diginetica = format == ClickLogFormat::kDiginetica;
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    std::string_view l(line);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    if (l.empty()) continue;
    const std::vector<std::string_view> f = Split(l, diginetica ? ';' : ',');
    Click c{0, 0, 0, 0, static_cast<int64_t>(clicks->size())};
    if (diginetica) {
      if (number == 1 && f.size() == 5 && f[0] == "sessionId") continue;  // the header
      if (f.size() != 5) Fail(path, number, "expected 5 ';'-separated fields (sessionId;userId;itemId;timeframe;eventdate)");
      if (!ParseInt(f[0], &c.session)) Fail(path, number, "sessionId is not an integer");
      if (!ParseInt(f[2], &c.item)) Fail(path, number, "itemId is not an integer");
      if (!ParseInt(f[3], &c.within)) Fail(path, number, "timeframe is not an integer");
      if (!ParseDate(f[4], &c.time)) Fail(path, number, "eventdate is not a YYYY-MM-DD date");
    } else {
      if (f.size() != 4) Fail(path, number, "expected 4 ','-separated fields (session,timestamp,item,category)");
      if (!ParseInt(f[0], &c.session)) Fail(path, number, "session is not an integer");
      if (!ParseTimestamp(f[1], &c.time)) Fail(path, number, "timestamp is not ISO 8601 (YYYY-MM-DDTHH:MM:SS.fffZ)");
      if (!ParseInt(f[2], &c.item)) Fail(path, number, "item is not an integer");
    }
    clicks->push_back(c);
  }
}

// Keeps the clicks of sessions with at least `min_len` of them.
void DropShortSessions(std::vector<Click>* clicks, int min_len) {
  std::unordered_map<int64_t, int64_t> length;
  for (const Click& c : *clicks) ++length[c.session];
  clicks->erase(std::remove_if(clicks->begin(), clicks->end(), [&](const Click& c) { return length[c.session] < min_len; }),
                clicks->end());
}

void DropRareItems(std::vector<Click>* clicks, int min_freq) {
  std::unordered_map<int64_t, int64_t> freq;
  for (const Click& c : *clicks) ++freq[c.item];
  clicks->erase(std::remove_if(clicks->begin(), clicks->end(), [&](const Click& c) { return freq[c.item] < min_freq; }),
                clicks->end());
}

}  // namespace

ClickLogFormat ParseClickLogFormat(const std::string& name) {
  if (name == "diginetica") return ClickLogFormat::kDiginetica;
  if (name == "yoochoose") return ClickLogFormat::kYoochoose;
  throw UserError("unknown click log format \"" + name + "\" (use diginetica or yoochoose)");
}

SessionRows BuildSessionRows(const std::vector<std::string>& paths, const SessionOptions& options) {
  if (options.max_len < 1) throw UserError("max_len must be >= 1");
  if (options.min_session_len < 2) throw UserError("min_session_len must be >= 2 (a session needs a next click)");
  if (options.min_item_freq < 1) throw UserError("min_item_freq must be >= 1");
  std::vector<Click> clicks;
  for (const std::string& p : paths) ReadClicks(p, options.format, &clicks);
  SessionRows out;
  out.clicks_read = static_cast<int64_t>(clicks.size());

  DropShortSessions(&clicks, options.min_session_len);
  if (options.min_item_freq > 1) {
    DropRareItems(&clicks, options.min_item_freq);
    DropShortSessions(&clicks, options.min_session_len);
  }
  out.clicks_kept = static_cast<int64_t>(clicks.size());

  // Each session's clicks together and in time order; then the sessions by their first click.
  auto time_order = [](const Click& a, const Click& b) {
    return std::tie(a.time, a.within, a.order) < std::tie(b.time, b.within, b.order);
  };
  std::sort(clicks.begin(), clicks.end(), [&](const Click& a, const Click& b) {
    return a.session != b.session ? a.session < b.session : time_order(a, b);
  });
  std::vector<std::pair<size_t, size_t>> sessions;  // [begin, end) in clicks
  for (size_t i = 0; i < clicks.size();) {
    size_t j = i;
    while (j < clicks.size() && clicks[j].session == clicks[i].session) ++j;
    sessions.emplace_back(i, j);
    i = j;
  }
  std::sort(sessions.begin(), sessions.end(), [&](const auto& a, const auto& b) {
    const Click &x = clicks[a.first], &y = clicks[b.first];
    // A Diginetica session's time is its day (timeframes count from each session's own start).
    return std::tie(x.time, x.session) < std::tie(y.time, y.session);
  });

  std::unordered_set<int64_t> items;
  auto row = [&](size_t begin, size_t target) {
    SessionRow r;
    r.session = clicks[target].session;
    r.item = clicks[target].item;
    const size_t from = target - std::min<size_t>(target - begin, static_cast<size_t>(options.max_len));
    for (size_t k = from; k < target; ++k) r.history.push_back(clicks[k].item);
    return r;
  };
  for (const auto& [begin, end] : sessions) {
    for (size_t t = begin + 1; t + 1 < end; ++t) out.train.push_back(row(begin, t));
    out.test.push_back(row(begin, end - 1));
    for (size_t k = begin; k < end; ++k) items.insert(clicks[k].item);
  }
  out.sessions_kept = static_cast<int64_t>(sessions.size());
  out.items_kept = static_cast<int64_t>(items.size());
  return out;
}

void WriteSessionCsv(const std::vector<SessionRow>& rows, const std::string& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw UserError("cannot write " + path);
  std::string buffer = "session_id,hist_item_id,item_id,label\n";
  auto append = [&](int64_t v) {
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), v);
    buffer.append(digits, end);
  };
  for (const SessionRow& r : rows) {
    append(r.session);
    buffer.push_back(',');
    for (size_t k = 0; k < r.history.size(); ++k) {
      if (k) buffer.push_back('|');
      append(r.history[k]);
    }
    buffer.push_back(',');
    append(r.item);
    buffer.append(",1\n");
    if (buffer.size() > (1 << 20)) {
      out.write(buffer.data(), static_cast<std::streamsize>(buffer.size()));
      buffer.clear();
    }
  }
  out.write(buffer.data(), static_cast<std::streamsize>(buffer.size()));
  if (!out) throw UserError("cannot write " + path);
}

}  // namespace shardrec::data

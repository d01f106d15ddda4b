// The `ctpurge list` table: its rows, cell by cell, and their layout.
#include "entryText.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "names.h"
#include "textParts.h"

namespace ctpurge {
using names::kAgeSource;
using names::protocolName;
using text::appendAddress;
using text::appendStateName;
using text::num;

namespace {

const char* const kTableHeader[kTableColumns] = {"PROTO", "STATE", "ORIGINAL", "", "FLAGS", "TIMEOUT", "IDLE", "AGE", "AGE FROM", "ZONE", "MARK"};

// formatDuration() in src/parse/duration.ts: the two largest units, '1h5m', '59s', '2d3h'.
void appendDuration(std::string& out, double seconds) {
  if (!std::isfinite(seconds)) {
    out += '?';
    return;
  }
  long long s = static_cast<long long>(std::floor(seconds + 0.5));  // Math.round
  if (s < 60) {
    num(out, s);
    out += 's';
    return;
  }
  static const std::pair<char, long long> kUnits[] = {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};
  int parts = 0;
  for (const auto& [unit, size] : kUnits) {
    if (s >= size) {
      num(out, s / size);
      out += unit;
      s %= size;
      parts++;
    }
    if (parts == 2) break;
  }
}

// 'addr:port', '[addr]:port' for IPv6, or the address alone without ports.
void appendEndpoint(std::string& out, uint8_t family, const Tuple& t, bool dst) {
  const bool v6 = family == AF_INET6;
  if (t.hasPorts && v6) out += '[';
  appendAddress(out, family, dst ? t.dst : t.src);
  if (!t.hasPorts) return;
  if (v6) out += ']';
  out += ':';
  num(out, dst ? t.dport : t.sport);
}

}  // namespace

void TableRows::add(const Entry& e, const Ages& ages) {
  auto cell = [&] { ends.push_back(static_cast<uint32_t>(text.size())); };
  if (const char* name = protocolName(e.protocol))
    text += name;
  else
    num(text, static_cast<unsigned>(e.protocol));
  cell();
  if (!appendStateName(text, e.protocol, e.state)) text += '-';
  cell();
  appendEndpoint(text, e.family, e.orig, false);
  cell();
  text += "-> ";
  appendEndpoint(text, e.family, e.orig, true);
  cell();
  const size_t flagsAt = text.size();
  if (!(e.status & 2u)) text += "UNREPLIED,";
  if (e.status & 4u) text += "ASSURED,";
  if (e.status & (1u << 14)) text += "OFFLOAD,";
  if (text.size() == flagsAt)
    text += '-';
  else
    text.pop_back();
  cell();
  if (e.hasTimeout)
    appendDuration(text, e.timeout);
  else
    text += '-';
  cell();
  if (ages.idle.known())
    appendDuration(text, ages.idle.seconds);
  else
    text += '?';
  cell();
  if (ages.age.known())
    appendDuration(text, ages.age.seconds);
  else
    text += '?';
  cell();
  text += kAgeSource[static_cast<int>(ages.age.source)];
  cell();
  // A zone of one direction is named with it, as conntrack -L's zone-orig= and zone-reply=.
  if (e.origZone) text += "orig:";
  if (e.replyZone) text += "reply:";
  num(text, e.zone ? e.zone : e.origZone ? e.origZone : e.replyZone);
  cell();
  num(text, e.mark);
  cell();
}

void TableRows::append(const TableRows& o) {
  const uint32_t base = static_cast<uint32_t>(text.size());
  text += o.text;
  for (uint32_t end : o.ends) ends.push_back(base + end);
}

TableLayout::TableLayout() {
  for (size_t i = 0; i < kTableColumns; i++) widths_[i] = std::strlen(kTableHeader[i]);
}

size_t TableLayout::write(TableRows& rows, bool laneDone, std::string& out) {
  if (laneDone && lanesLeft_ > 0) lanesLeft_--;
  if (holding_) {
    head_.append(rows);
    rows.clear();
    if (head_.rows() < kHeadRows && lanesLeft_ > 0) return 0;
    holding_ = false;
    format(head_, out);
    const size_t n = head_.rows();
    head_ = TableRows{};
    return n;
  }
  format(rows, out);
  const size_t n = rows.rows();
  rows.clear();
  return n;
}

void TableLayout::format(const TableRows& rows, std::string& out) {
  if (rows.empty()) return;
  auto cellAt = [&](size_t i) -> std::pair<const char*, size_t> {
    const size_t begin = i == 0 ? 0 : rows.ends[i - 1];
    return {rows.text.data() + begin, rows.ends[i] - begin};
  };
  for (size_t i = 0; i < rows.ends.size(); i++) {
    size_t& w = widths_[i % kTableColumns];
    w = std::max(w, cellAt(i).second);
  }
  auto line = [&](auto&& cell) {
    const size_t at = out.size();
    for (size_t c = 0; c < kTableColumns; c++) {
      const auto [p, n] = cell(c);
      if (c) out += "  ";
      out.append(p, n);
      if (c + 1 < kTableColumns && n < widths_[c]) out.append(widths_[c] - n, ' ');
    }
    while (out.size() > at && out.back() == ' ') out.pop_back();  // trimEnd()
    out += '\n';
  };
  if (!headerDone_) {
    headerDone_ = true;
    line([&](size_t c) { return std::pair<const char*, size_t>{kTableHeader[c], std::strlen(kTableHeader[c])}; });
  }
  for (size_t r = 0; r * kTableColumns < rows.ends.size(); r++) line([&](size_t c) { return cellAt(r * kTableColumns + c); });
}

}  // namespace ctpurge

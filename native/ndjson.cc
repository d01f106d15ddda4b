#include "ndjson.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <charconv>
#include <ctime>
#include <initializer_list>
#include <utility>

#include "names.h"

namespace ctpurge {
namespace {

// std::to_string allocates a temporary per number; to_chars writes in place.
template <typename T>
void num(std::string& out, T v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<size_t>(r.ptr - buf));
}

using names::kAgeSource;
using names::kDccp;
using names::kSctp;
using names::kStatus;
using names::kTcp;
using names::protocolName;

// The state's name (or number), unquoted; false when the protocol has no states.
bool appendStateName(std::string& out, uint8_t proto, uint8_t state) {
  const char* const* table = nullptr;
  size_t size = 0;
  if (proto == IPPROTO_TCP) { table = kTcp; size = std::size(kTcp); }
  else if (proto == IPPROTO_SCTP) { table = kSctp; size = std::size(kSctp); }
  else if (proto == IPPROTO_DCCP) { table = kDccp; size = std::size(kDccp); }
  if (!table || state == kNoState) return false;
  if (state < size) out += table[state];
  else num(out, state);
  return true;
}

void appendState(std::string& out, uint8_t proto, uint8_t state) {
  const size_t at = out.size();
  out += '"';
  if (appendStateName(out, proto, state)) {
    out += '"';
  } else {
    out.resize(at);
    out += "null";
  }
}

// RFC 5952 text, exactly like formatIpv6() in src/parse/address.ts (no embedded IPv4).
void appendAddress(std::string& out, uint8_t family, const uint8_t* a) {
  char buf[48];
  if (family == AF_INET) {
    for (int i = 0; i < 4; i++) {
      if (i) out += '.';
      num(out, static_cast<unsigned>(a[i]));
    }
    return;
  }
  unsigned g[8];
  for (int i = 0; i < 8; i++) g[i] = (static_cast<unsigned>(a[i * 2]) << 8) | a[i * 2 + 1];
  int bestStart = -1, bestLen = 0;
  for (int i = 0; i < 8;) {
    if (g[i] != 0) { i++; continue; }
    int j = i;
    while (j < 8 && g[j] == 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  if (bestLen < 2) bestStart = -1;
  for (int i = 0; i < 8; i++) {
    if (i == bestStart) {
      out += "::";
      i += bestLen - 1;
      continue;
    }
    if (i > 0 && i != bestStart + bestLen) out += ':';
    auto r = std::to_chars(buf, buf + sizeof buf, g[i], 16);
    out.append(buf, static_cast<size_t>(r.ptr - buf));
  }
}

// Each field's text (separator and name), then its number. The JSON and the `conntrack -L`
// tuple writers differ only in that text and the order.
void appendNumbers(std::string& out, std::initializer_list<std::pair<const char*, unsigned>> fields) {
  for (const auto& [text, value] : fields) {
    out += text;
    num(out, value);
  }
}

void appendTuple(std::string& out, uint8_t family, const Tuple& t) {
  out += "{\"src\":\"";
  appendAddress(out, family, t.src);
  out += "\",\"dst\":\"";
  appendAddress(out, family, t.dst);
  out += '"';
  if (t.hasPorts) appendNumbers(out, {{",\"sport\":", t.sport}, {",\"dport\":", t.dport}});
  if (t.hasIcmp) {
    appendNumbers(out, {{",\"icmp\":{\"type\":", t.icmpType}, {",\"code\":", t.icmpCode}, {",\"id\":", t.icmpId}});
    out += '}';
  }
  out += '}';
}

// Math.round(age * 1000) / 1000, printed the way JavaScript prints that number.
void appendAge(std::string& out, double age) {
  const long long milli = std::llround(age * 1000.0);
  num(out, milli / 1000);
  long long frac = milli % 1000;
  if (frac == 0) return;
  char buf[8];
  std::snprintf(buf, sizeof buf, ".%03lld", frac);
  std::string f(buf);
  while (f.back() == '0') f.pop_back();
  out += f;
}

}  // namespace

void appendIsoTime(std::string& out, uint64_t ns) {
  const long long ms = static_cast<long long>(ns / 1000000ull);
  const time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03lldZ\"", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
  out += buf;
}

void stampNdjson(std::string& out, const std::string& tag) {
  if (out.size() < 2 || out.compare(out.size() - 2, 2, "}\n") != 0) return;
  out.resize(out.size() - 2);
  out += ",\"time\":";
  appendIsoTime(out, realtimeNowNs());
  out += tag;
  out += "}\n";
}

void appendNdjson(std::string& out, const Entry& e, const Ages& ages) {
  const Age& age = ages.age;
  out += "{\"id\":";
  num(out, e.id);
  out += e.family == AF_INET ? ",\"family\":\"ipv4\"" : ",\"family\":\"ipv6\"";
  out += ",\"protocol\":";
  if (const char* name = protocolName(e.protocol)) {
    out += '"';
    out += name;
    out += '"';
  } else {
    num(out, static_cast<unsigned>(e.protocol));
  }
  out += ",\"state\":";
  appendState(out, e.protocol, e.state);
  out += ",\"orig\":";
  appendTuple(out, e.family, e.orig);
  out += ",\"reply\":";
  appendTuple(out, e.family, e.reply);
  out += ",\"status\":[";
  bool first = true;
  for (unsigned bit = 0; bit < std::size(kStatus); bit++) {
    if (!(e.status & (1u << bit))) continue;
    if (!first) out += ',';
    first = false;
    out += '"';
    out += kStatus[bit];
    out += '"';
  }
  out += "],\"unreplied\":";
  out += (e.status & 2u) ? "false" : "true";
  out += ",\"timeout\":";
  if (e.hasTimeout) num(out, e.timeout);
  else out += "null";
  out += ",\"mark\":";
  num(out, e.mark);
  appendNumbers(out, {{",\"zone\":", e.zone}, {",\"origZone\":", e.origZone}, {",\"replyZone\":", e.replyZone}});
  out += ",\"labels\":[";
  first = true;
  for (unsigned bit = 0; bit < 128; bit++) {
    if (!(e.labels[bit / 8] & (1u << (bit % 8)))) continue;
    if (!first) out += ',';
    first = false;
    num(out, bit);
  }
  out += "],\"counters\":";
  if (e.hasCounters) {
    out += "{\"orig\":{\"packets\":";
    num(out, e.packets[0]);
    out += ",\"bytes\":";
    num(out, e.bytes[0]);
    out += "},\"reply\":{\"packets\":";
    num(out, e.packets[1]);
    out += ",\"bytes\":";
    num(out, e.bytes[1]);
    out += "}}";
  } else {
    out += "null";
  }
  out += ",\"start\":";
  if (e.hasStart) appendIsoTime(out, e.startNs);
  else out += "null";
  out += ",\"age\":";
  if (age.source == AgeSource::Unknown || std::isnan(age.seconds)) out += "null";
  else appendAge(out, age.seconds);
  out += ",\"ageSource\":\"";
  out += kAgeSource[static_cast<int>(age.source)];
  out += "\",\"idle\":";
  if (ages.idle.known()) appendAge(out, ages.idle.seconds);
  else out += "null";
  out += ages.idle.known() ? ",\"idleSource\":\"timeout\"}\n" : ",\"idleSource\":\"unknown\"}\n";
}

namespace {

void appendTupleText(std::string& out, uint8_t family, const Tuple& t) {
  out += "src=";
  appendAddress(out, family, t.src);
  out += " dst=";
  appendAddress(out, family, t.dst);
  if (t.hasIcmp) appendNumbers(out, {{" type=", t.icmpType}, {" code=", t.icmpCode}, {" id=", t.icmpId}});
  if (t.hasPorts) appendNumbers(out, {{" sport=", t.sport}, {" dport=", t.dport}});
}

// " packets=N bytes=N" of one direction (0 original, 1 reply), when accounting is on.
void appendCountersText(std::string& out, const Entry& e, int dir) {
  if (!e.hasCounters) return;
  out += " packets=";
  num(out, e.packets[dir]);
  out += " bytes=";
  num(out, e.bytes[dir]);
}

}  // namespace

void appendConntrackLine(std::string& out, const Entry& e, uint64_t nowNs) {
  const char* name = protocolName(e.protocol);
  std::string proto = name ? name : "unknown";
  if (proto.size() < 8) proto.append(8 - proto.size(), ' ');
  out += proto;
  out += ' ';
  num(out, static_cast<unsigned>(e.protocol));
  out += ' ';
  num(out, e.hasTimeout ? e.timeout : 0u);
  out += ' ';
  if (appendStateName(out, e.protocol, e.state)) out += ' ';
  appendTupleText(out, e.family, e.orig);
  if (e.origZone) appendNumbers(out, {{" zone-orig=", e.origZone}});
  appendCountersText(out, e, 0);
  if (!(e.status & 2u)) out += " [UNREPLIED]";
  out += ' ';
  appendTupleText(out, e.family, e.reply);
  if (e.replyZone) appendNumbers(out, {{" zone-reply=", e.replyZone}});
  appendCountersText(out, e, 1);
  if (e.status & 4u) out += " [ASSURED]";
  out += " mark=";
  num(out, e.mark);
  if (e.zone) {
    out += " zone=";
    num(out, e.zone);
  }
  if (e.hasStart) {
    // conntrack subtracts whole seconds.
    out += " delta-time=";
    num(out, static_cast<long long>(nowNs / 1000000000ull) - static_cast<long long>(e.startNs / 1000000000ull));
  }
  out += '\n';
}

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
  if (const char* name = protocolName(e.protocol)) text += name;
  else num(text, static_cast<unsigned>(e.protocol));
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
  if (text.size() == flagsAt) text += '-';
  else text.pop_back();
  cell();
  if (e.hasTimeout) appendDuration(text, e.timeout);
  else text += '-';
  cell();
  if (ages.idle.known()) appendDuration(text, ages.idle.seconds);
  else text += '?';
  cell();
  if (ages.age.known()) appendDuration(text, ages.age.seconds);
  else text += '?';
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

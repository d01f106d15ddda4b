// NDJSON lines (the list --json and audit-log format), and the ISO times they carry.
#include "entryText.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cmath>
#include <cstdio>
#include <ctime>

#include "names.h"
#include "textParts.h"

namespace ctpurge {
using names::kAgeSource;
using names::kStatus;
using names::protocolName;
using text::appendAge;
using text::appendNumbers;
using text::appendState;
using text::appendTuple;
using text::num;

void appendIsoTime(std::string& out, uint64_t ns) {
  const long long ms = static_cast<long long>(ns / 1000000ull);
  const time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03lldZ\"", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                ms % 1000);
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
  if (e.hasTimeout)
    num(out, e.timeout);
  else
    out += "null";
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
  if (e.hasStart)
    appendIsoTime(out, e.startNs);
  else
    out += "null";
  out += ",\"age\":";
  if (age.source == AgeSource::Unknown || std::isnan(age.seconds))
    out += "null";
  else
    appendAge(out, age.seconds);
  out += ",\"ageSource\":\"";
  out += kAgeSource[static_cast<int>(age.source)];
  out += "\",\"idle\":";
  if (ages.idle.known())
    appendAge(out, ages.idle.seconds);
  else
    out += "null";
  out += ages.idle.known() ? ",\"idleSource\":\"timeout\"}\n" : ",\"idleSource\":\"unknown\"}\n";
}

}  // namespace ctpurge

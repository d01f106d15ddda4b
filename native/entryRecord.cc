#include "entryRecord.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace ctpurge {
namespace {

template <typename T>
void put(uint8_t* base, size_t off, T v) {
  std::memcpy(base + off, &v, sizeof v);
}

void putTuple(uint8_t* r, size_t addrOff, size_t portOff, size_t icmpOff, const Tuple& t) {
  std::memcpy(r + addrOff, t.src, 16);
  std::memcpy(r + addrOff + 16, t.dst, 16);
  put<uint16_t>(r, portOff, t.sport);
  put<uint16_t>(r, portOff + 2, t.dport);
  r[icmpOff] = t.icmpType;
  r[icmpOff + 1] = t.icmpCode;
  put<uint16_t>(r, icmpOff + 2, t.icmpId);
}

template <typename T>
T get(const uint8_t* base, size_t off) {
  T v;
  std::memcpy(&v, base + off, sizeof v);
  return v;
}

void getTuple(const uint8_t* r, size_t addrOff, size_t portOff, size_t icmpOff, Tuple& t) {
  std::memcpy(t.src, r + addrOff, 16);
  std::memcpy(t.dst, r + addrOff + 16, 16);
  t.sport = get<uint16_t>(r, portOff);
  t.dport = get<uint16_t>(r, portOff + 2);
  t.icmpType = r[icmpOff];
  t.icmpCode = r[icmpOff + 1];
  t.icmpId = get<uint16_t>(r, icmpOff + 2);
}

}  // namespace

void appendRecord(std::vector<uint8_t>& out, const Entry& e, const Ages& ages) {
  const Age& age = ages.age;
  const size_t at = out.size();
  out.resize(at + kRecordSize);
  uint8_t* r = out.data() + at;
  std::memset(r, 0, kRecordSize);
  put<uint32_t>(r, 0, e.id);
  put<uint32_t>(r, 4, e.status);
  put<uint32_t>(r, 8, e.timeout);
  put<uint32_t>(r, 12, e.mark);
  put<uint16_t>(r, 16, e.zone);
  r[18] = e.family;
  r[19] = e.protocol;
  r[20] = e.state;
  r[21] = static_cast<uint8_t>(age.source);
  uint8_t flags = 0;
  if (e.hasTimeout) flags |= kHasTimeout;
  if (e.hasCounters) flags |= kHasCounters;
  if (e.hasStart) flags |= kHasStart;
  if (e.hasLabels) flags |= kHasLabels;
  if (e.orig.hasPorts) flags |= kOrigPorts;
  if (e.orig.hasIcmp) flags |= kOrigIcmp;
  if (e.reply.hasPorts) flags |= kReplyPorts;
  if (e.reply.hasIcmp) flags |= kReplyIcmp;
  r[22] = flags;
  // r[23]: the event type, set by the event cursor; 0 for dumps.
  put<double>(r, 24, age.seconds);
  put<double>(r, 32, static_cast<double>(e.startNs) / 1e6);
  putTuple(r, 40, 72, 160, e.orig);
  putTuple(r, 76, 108, 164, e.reply);
  put<double>(r, 112, static_cast<double>(e.packets[0]));
  put<double>(r, 120, static_cast<double>(e.bytes[0]));
  put<double>(r, 128, static_cast<double>(e.packets[1]));
  put<double>(r, 136, static_cast<double>(e.bytes[1]));
  std::memcpy(r + 144, e.labels, 16);
  // The idle time: its only source is the timeout estimate, so NaN alone says "unknown".
  put<double>(r, 168, ages.idle.known() ? ages.idle.seconds : std::numeric_limits<double>::quiet_NaN());
  put<uint16_t>(r, 176, e.origZone);
  put<uint16_t>(r, 178, e.replyZone);
  // 180-183: reserved (zero).
}

void readRecord(const uint8_t* r, Entry& e, Ages& ages) {
  e = Entry{};
  ages = Ages{};
  e.id = get<uint32_t>(r, 0);
  e.hasId = true;
  e.status = get<uint32_t>(r, 4);
  e.timeout = get<uint32_t>(r, 8);
  e.mark = get<uint32_t>(r, 12);
  e.zone = get<uint16_t>(r, 16);
  e.family = r[18];
  e.protocol = r[19];
  e.state = r[20];
  ages.age.source = r[21] <= static_cast<uint8_t>(AgeSource::Timeout) ? static_cast<AgeSource>(r[21]) : AgeSource::Unknown;
  const uint8_t flags = r[22];
  e.hasTimeout = flags & kHasTimeout;
  e.hasCounters = flags & kHasCounters;
  e.hasStart = flags & kHasStart;
  e.hasLabels = flags & kHasLabels;
  ages.age.seconds = get<double>(r, 24);
  if (ages.age.seconds != ages.age.seconds) ages.age.source = AgeSource::Unknown;
  // Milliseconds to the microsecond, then whole: ms * 1e6 in a double would round the nanoseconds.
  e.startNs = static_cast<uint64_t>(std::llround(get<double>(r, 32) * 1000)) * 1000;
  getTuple(r, 40, 72, 160, e.orig);
  getTuple(r, 76, 108, 164, e.reply);
  e.orig.hasPorts = flags & kOrigPorts;
  e.orig.hasIcmp = flags & kOrigIcmp;
  e.reply.hasPorts = flags & kReplyPorts;
  e.reply.hasIcmp = flags & kReplyIcmp;
  e.packets[0] = static_cast<uint64_t>(get<double>(r, 112));
  e.bytes[0] = static_cast<uint64_t>(get<double>(r, 120));
  e.packets[1] = static_cast<uint64_t>(get<double>(r, 128));
  e.bytes[1] = static_cast<uint64_t>(get<double>(r, 136));
  std::memcpy(e.labels, r + 144, 16);
  const double idle = get<double>(r, 168);
  ages.idle.seconds = idle;
  ages.idle.source = idle == idle ? AgeSource::Timeout : AgeSource::Unknown;
  e.origZone = get<uint16_t>(r, 176);
  e.replyZone = get<uint16_t>(r, 178);
}

}  // namespace ctpurge

#include "entryRecord.h"

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

}  // namespace ctpurge

#include "filter.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cmath>

namespace ctpurge {

bool Cidr::contains(uint8_t entryFamily, const uint8_t* a) const {
  if (entryFamily != family) return false;
  const int fullBytes = prefix / 8;
  for (int i = 0; i < fullBytes; i++) {
    if (a[i] != addr[i]) return false;
  }
  const int rest = prefix % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[fullBytes] & mask) == (addr[fullBytes] & mask);
}

namespace {

bool anyContains(const std::vector<Cidr>& list, uint8_t family, const uint8_t* a) {
  if (list.empty()) return true;
  for (const Cidr& c : list) {
    if (c.contains(family, a)) return true;
  }
  return false;
}

bool inRange(const PortRange& r, uint16_t p) { return p >= r.lo && p <= r.hi; }

bool hasPortsProtocol(uint8_t p) {
  return p == IPPROTO_TCP || p == IPPROTO_UDP || p == IPPROTO_UDPLITE || p == IPPROTO_SCTP || p == IPPROTO_DCCP;
}

// One IPv4 address (a /32): what CTA_FILTER compares exactly. IPv6 never: the kernel's
// IPv6 comparison is inverted (it skips the entries whose address is equal).
bool exactV4(const std::vector<Cidr>& list, uint8_t* out) {
  if (list.size() != 1 || list[0].family != AF_INET || list[0].prefix != 32) return false;
  for (int i = 0; i < 4; i++) out[i] = list[0].addr[i];
  return true;
}

bool hasTupleConditions(const Filter& f) {
  return f.protocol >= 0 || f.hasSport || f.hasDport || !f.src.empty() || !f.dst.empty() || !f.replySrc.empty() ||
         !f.replyDst.empty();
}

}  // namespace

DumpFilter Filter::dumpFilter() const {
  DumpFilter d;
  if (!kernelFilters) return d;
  d.family = family;
  if (hasMark && kernelMarkFilter) {
    d.hasMark = true;
    d.mark = mark & markMask;
    d.markMask = markMask;
  }
  if (kernelStatusFilter && statusMask != 0) {
    d.hasStatus = true;
    d.status = statusValue;
    d.statusMask = statusMask;
  }
  if (kernelZoneFilter && hasZone) {
    d.hasZone = true;
    d.zone = zone;
  }
  if (kernelTupleDump) d.tuple = kernelTuple();
  return d;
}

TupleFilter Filter::kernelTuple() const {
  TupleFilter t;
  if (family != AF_INET && family != AF_INET6) return t;
  if (protocol >= 0) {
    t.hasProtocol = true;
    t.protocol = static_cast<uint8_t>(protocol);
    // The kernel compares ports for TCP and UDP only; for SCTP, DCCP and UDP-Lite it would
    // let every port through.
    if (protocol == IPPROTO_TCP || protocol == IPPROTO_UDP) {
      if (hasSport && sport.lo == sport.hi) {
        t.hasSport = true;
        t.sport = sport.lo;
      }
      if (hasDport && dport.lo == dport.hi) {
        t.hasDport = true;
        t.dport = dport.lo;
      }
    }
  }
  if (family == AF_INET) {
    t.hasOrigSrc = exactV4(src, t.origSrc);
    t.hasOrigDst = exactV4(dst, t.origDst);
    t.hasReplySrc = exactV4(replySrc, t.replySrc);
    t.hasReplyDst = exactV4(replyDst, t.replyDst);
  }
  return t;
}

std::vector<Filter> Filter::flushParts() const {
  if (family != 0 || !hasTupleConditions(*this)) return {*this};
  std::vector<Filter> parts(2, *this);
  parts[0].family = AF_INET;
  parts[1].family = AF_INET6;
  return parts;
}

bool Filter::flushable() const {
  if (!kernelFilters) return false;
  if (hasStates || hasOlderThan || hasIdleFor) return false;
  if (statusMask != 0 && !kernelStatusFilter) return false;
  if (hasZone && !kernelZoneFilter) return false;
  if (hasMark && !kernelMarkFilter) return false;
  const bool tuple = hasTupleConditions(*this);
  if (tuple) {
    // Before 6.12 a DELETE with CTA_FILTER is refused or read as a delete of one tuple.
    if (!kernelTupleFlush) return false;
    if (family == 0) {
      for (const Filter& part : flushParts()) {
        if (!part.flushable()) return false;
      }
      return true;
    }
    const TupleFilter t = kernelTuple();
    if (protocol >= 0 && !t.hasProtocol) return false;
    if (hasSport && !t.hasSport) return false;
    if (hasDport && !t.hasDport) return false;
    if (!src.empty() && !t.hasOrigSrc) return false;
    if (!dst.empty() && !t.hasOrigDst) return false;
    if (!replySrc.empty() && !t.hasReplySrc) return false;
    if (!replyDst.empty() && !t.hasReplyDst) return false;
  }
  // A flush with no condition at all would empty the table: never by implication.
  return statusMask != 0 || hasMark || hasZone || tuple;
}

bool Filter::matches(const Entry& e, const Ages& ages) const {
  if (family && e.family != family) return false;
  if (protocol >= 0 && e.protocol != protocol) return false;
  if ((e.status & statusMask) != statusValue) return false;
  if (hasMark && (e.mark & markMask) != (mark & markMask)) return false;
  if (hasZone && e.zone != zone) return false;
  if (hasStates) {
    if (e.state == kNoState || e.state >= 32) return false;
    uint32_t set = 0;
    if (e.protocol == IPPROTO_TCP) set = tcpStates;
    else if (e.protocol == IPPROTO_SCTP) set = sctpStates;
    else if (e.protocol == IPPROTO_DCCP) set = dccpStates;
    if (!(set & (1u << e.state))) return false;
  }
  if (hasSport && !(hasPortsProtocol(e.protocol) && e.orig.hasPorts && inRange(sport, e.orig.sport))) return false;
  if (hasDport && !(hasPortsProtocol(e.protocol) && e.orig.hasPorts && inRange(dport, e.orig.dport))) return false;
  if (!anyContains(src, e.family, e.orig.src)) return false;
  if (!anyContains(dst, e.family, e.orig.dst)) return false;
  if (!anyContains(replySrc, e.family, e.reply.src)) return false;
  if (!anyContains(replyDst, e.family, e.reply.dst)) return false;
  // An unknown time never matches: no entry goes on a guess.
  if (hasOlderThan && !(ages.age.known() && ages.age.seconds >= olderThan)) return false;
  if (hasIdleFor && !(ages.idle.known() && ages.idle.seconds >= idleFor)) return false;
  return true;
}

}  // namespace ctpurge

#include "filter.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cmath>
#include <cstring>

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

bool hasPortsProtocol(uint8_t p) { return p == IPPROTO_TCP || p == IPPROTO_UDP || p == IPPROTO_UDPLITE || p == IPPROTO_SCTP || p == IPPROTO_DCCP; }

size_t addressLength(uint8_t family) { return family == AF_INET6 ? 16 : 4; }

// As conntrack -n/-g reads it (libnetfilter_conntrack's NFCT_GOPT_IS_SNAT/SPAT): the kernel set
// the NAT up (SRC_NAT_DONE) and the reply's destination is not the original source, by address
// or by port. Addresses are compared whole (conntrack compares an IPv6 address's first 32 bits).
bool sourceNated(const Entry& e) {
  if (!(e.status & (1u << 7))) return false;  // IPS_SRC_NAT_DONE
  if (std::memcmp(e.reply.dst, e.orig.src, addressLength(e.family)) != 0) return true;
  return hasPortsProtocol(e.protocol) && e.orig.hasPorts && e.reply.hasPorts && e.reply.dport != e.orig.sport;
}

bool destinationNated(const Entry& e) {
  if (!(e.status & (1u << 8))) return false;  // IPS_DST_NAT_DONE
  if (std::memcmp(e.reply.src, e.orig.dst, addressLength(e.family)) != 0) return true;
  return hasPortsProtocol(e.protocol) && e.orig.hasPorts && e.reply.hasPorts && e.reply.sport != e.orig.dport;
}

}  // namespace

bool Filter::needsAge() const {
  if (hasOlderThan || hasIdleFor) return true;
  for (const Filter& x : except)
    if (x.needsAge()) return true;
  return false;
}

bool Filter::matches(const Entry& e, const Ages& ages) const {
  if (!matchesOwn(e, ages, false)) return false;
  for (const Filter& x : except)
    if (x.matchesOwn(e, ages, true)) return false;
  return true;
}

bool Filter::matchesOwn(const Entry& e, const Ages& ages, bool unknownTimeMatches) const {
  if (family && e.family != family) return false;
  if (protocol >= 0 && e.protocol != protocol) return false;
  if ((e.status & statusMask) != statusValue) return false;
  // As the kernel, conntrack -L, iptables and nft compare it: the value as given (the query
  // compiler refuses a value with bits outside its mask).
  if (hasMark && (e.mark & markMask) != mark) return false;
  if (hasZone && e.zone != zone) return false;
  if (hasOrigZone && e.origZone != origZone) return false;
  if (hasReplyZone && e.replyZone != replyZone) return false;
  if (hasStates) {
    if (e.state == kNoState || e.state >= 32) return false;
    uint32_t set = 0;
    if (e.protocol == IPPROTO_TCP)
      set = tcpStates;
    else if (e.protocol == IPPROTO_SCTP)
      set = sctpStates;
    else if (e.protocol == IPPROTO_DCCP)
      set = dccpStates;
    if (!(set & (1u << e.state))) return false;
  }
  if (hasSport && !(hasPortsProtocol(e.protocol) && e.orig.hasPorts && inRange(sport, e.orig.sport))) return false;
  if (hasDport && !(hasPortsProtocol(e.protocol) && e.orig.hasPorts && inRange(dport, e.orig.dport))) return false;
  if (hasReplySport && !(hasPortsProtocol(e.protocol) && e.reply.hasPorts && inRange(replySport, e.reply.sport))) return false;
  if (hasReplyDport && !(hasPortsProtocol(e.protocol) && e.reply.hasPorts && inRange(replyDport, e.reply.dport))) return false;
  if (srcNat >= 0 && sourceNated(e) != (srcNat == 1)) return false;
  if (dstNat >= 0 && destinationNated(e) != (dstNat == 1)) return false;
  if (anyNat >= 0 && (sourceNated(e) || destinationNated(e)) != (anyNat == 1)) return false;
  if (hasLabels) {
    for (int i = 0; i < 16; i++)
      if ((e.labels[i] & labels[i]) != labels[i]) return false;
  }
  if (hasIds && !(e.hasId && std::binary_search(ids.begin(), ids.end(), e.id))) return false;
  if (!anyContains(src, e.family, e.orig.src)) return false;
  if (!anyContains(dst, e.family, e.orig.dst)) return false;
  if (!anyContains(replySrc, e.family, e.reply.src)) return false;
  if (!anyContains(replyDst, e.family, e.reply.dst)) return false;
  // An unknown time never matches a selector (no entry goes on a guess), and always matches an
  // exclusion (for the same reason).
  if (hasOlderThan && !(ages.age.known() ? ages.age.seconds >= olderThan : unknownTimeMatches)) return false;
  if (hasIdleFor && !(ages.idle.known() ? ages.idle.seconds >= idleFor : unknownTimeMatches)) return false;
  return true;
}

}  // namespace ctpurge

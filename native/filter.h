// The match side of a query plan (src/plan.ts): what every entry the kernel sends is checked
// against. What the kernel is asked to filter by, and whether to flush, is decided in
// TypeScript and arrives here as a KernelFilter.
#pragma once
#include <cstdint>
#include <vector>

#include "ctMessage.h"
#include "policyTimeouts.h"

namespace ctpurge {

struct Cidr {
  uint8_t family = 0;
  uint8_t addr[16] = {};
  uint8_t prefix = 0;
  bool contains(uint8_t entryFamily, const uint8_t* a) const;
};

struct PortRange {
  uint16_t lo = 0, hi = 65535;
};

struct Filter {
  uint8_t family = 0;  // 0 = any, AF_INET, AF_INET6
  int protocol = -1;   // -1 = any
  bool hasStates = false;
  uint32_t tcpStates = 0, sctpStates = 0, dccpStates = 0;  // bit i = kernel state i
  uint32_t statusMask = 0, statusValue = 0;
  bool hasMark = false;
  uint32_t mark = 0, markMask = 0;
  // The three zones as conntrack -L shows them (Entry::zone, origZone, replyZone).
  bool hasZone = false, hasOrigZone = false, hasReplyZone = false;
  uint16_t zone = 0, origZone = 0, replyZone = 0;
  std::vector<Cidr> src, dst, replySrc, replyDst;  // each: any-of
  bool hasSport = false, hasDport = false;
  PortRange sport, dport;
  bool hasReplySport = false, hasReplyDport = false;  // the reply direction's ports
  PortRange replySport, replyDport;
  bool hasOlderThan = false;
  double olderThan = 0;  // seconds since creation (Ages::age)
  bool hasIdleFor = false;
  double idleFor = 0;  // seconds since the last packet (Ages::idle)
  // NAT as the reply tuple shows it: -1 any, 0 must not, 1 must.
  int8_t srcNat = -1, dstNat = -1, anyNat = -1;
  bool hasLabels = false;
  uint8_t labels[16] = {};  // every bit set here must be set in the entry's
  // Entry ids, sorted (not a query field: a grace's settle counts which of its entries are left).
  bool hasIds = false;
  std::vector<uint32_t> ids;
  // Exclusions (the query's except): an entry that matches any of them never matches. An
  // exclusion's unknown time counts as a match, so an entry is never taken on a guess.
  std::vector<Filter> except;
  bool needsAge() const;
  // ages: from estimateAges(); only read when needsAge().
  bool matches(const Entry& e, const Ages& ages) const;

 private:
  bool matchesOwn(const Entry& e, const Ages& ages, bool unknownTimeMatches) const;
};

// One lane of a plan: the kernel-side filter its dump (or flush) request carries, the filter
// every entry it sends is checked against, and whether its dump is read ahead on a thread of
// its own (DumpReader). The lanes of a plan are disjoint.
struct Lane {
  KernelFilter kernel;
  Filter match;
  bool readAhead = false;
};

}  // namespace ctpurge

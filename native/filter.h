// A query compiled once (in TypeScript, then here) and evaluated for every entry.
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
  bool hasZone = false;
  uint16_t zone = 0;
  std::vector<Cidr> src, dst, replySrc, replyDst;  // each: any-of
  bool hasSport = false, hasDport = false;
  PortRange sport, dport;
  bool hasOlderThan = false;
  double olderThan = 0;  // seconds since creation (Ages::age)
  bool hasIdleFor = false;
  double idleFor = 0;    // seconds since the last packet (Ages::idle)
  // Which kernel-side filters the running kernel honours (decided from its version).
  bool kernelStatusFilter = false;
  bool kernelZoneFilter = false;
  bool kernelMarkFilter = true;   // false on 5.8 with a partial mask (it skipped matching entries)
  bool kernelTupleDump = false;   // CTA_FILTER in dumps: 5.8
  bool kernelTupleFlush = false;  // CTA_FILTER in flushes: 6.12
  // false: send no filter to the kernel at all and match everything here (stands in for
  // old kernels in tests, and is a way out if a kernel filter ever misbehaves).
  bool kernelFilters = true;

  // The part the kernel can apply while dumping. Everything is re-checked by matches().
  DumpFilter dumpFilter() const;
  // The exact-tuple conditions the kernel's CTA_FILTER compares the way matches() does:
  // protocol; one port (TCP/UDP); one IPv4 address (/32) per direction and side. Empty
  // without a family (the kernel needs one to compare addresses).
  TupleFilter kernelTuple() const;
  // True when filtered flushes (DELETE without tuple) remove exactly what this filter
  // selects: every condition is one the running kernel compares in a flush. A query
  // without a family but with tuple conditions is flushed once per family (flushParts).
  bool flushable() const;
  // The filters to flush, one per family when the query names none but has tuple conditions.
  std::vector<Filter> flushParts() const;
  bool needsAge() const { return hasOlderThan || hasIdleFor; }
  // ages: from estimateAges(); only read when needsAge().
  bool matches(const Entry& e, const Ages& ages) const;
};

}  // namespace ctpurge

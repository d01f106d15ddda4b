// ctnetlink messages read: entries parsed in place from a dump or an event, and the counters;
// the filters requests carry. Every request is built in ctRequest.h.
#pragma once
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ctpurge {

// Attributes newer than the oldest headers the addon is built with (Debian 11's
// linux-libc-dev, 5.10, for the prebuilt addon): their numbers are the kernel's ABI, so they
// are spelled out here rather than taken from <linux/netfilter/nfnetlink_conntrack.h>.
constexpr uint16_t kCtaStatusMask = 26;         // CTA_STATUS_MASK (5.15)
constexpr uint16_t kCtaStatsChainTooLong = 15;  // CTA_STATS_CHAIN_TOOLONG (5.12)

constexpr uint8_t kNoState = 0xff;

struct Tuple {
  uint8_t src[16] = {};
  uint8_t dst[16] = {};
  uint16_t sport = 0;  // host order; for GRE the keys
  uint16_t dport = 0;
  uint8_t icmpType = 0, icmpCode = 0;
  uint16_t icmpId = 0;
  bool hasPorts = false;
  bool hasIcmp = false;
};

// One conntrack entry, parsed straight from its netlink attributes: no allocation. The raw
// CTA_TUPLE_ORIG pointer is only valid while the receive buffer it points into is.
struct Entry {
  uint32_t id = 0;
  uint32_t status = 0;
  uint32_t timeout = 0;
  uint32_t mark = 0;
  // An entry's zone applies in both directions (CTA_ZONE), or in one (CTA_TUPLE_ZONE inside
  // that direction's tuple): conntrack -L's zone=, zone-orig= and zone-reply=. An entry has
  // at most one of the three; the others read 0, as conntrack reads them.
  uint16_t zone = 0;
  uint16_t origZone = 0, replyZone = 0;
  uint8_t family = 0;
  uint8_t protocol = 0;
  uint8_t state = kNoState;
  bool hasTimeout = false;
  bool hasCounters = false;
  bool hasStart = false;
  bool hasLabels = false;
  bool hasId = false;
  // A helper that refreshes the entry with timeouts of its own (sip, RAS, netbios-ns, snmp),
  // on UDP, where they do it (sip over TCP never does): no policy timeout tells how long it
  // has been idle.
  bool helperTimeout = false;
  Tuple orig, reply;
  uint64_t packets[2] = {}, bytes[2] = {};  // [0] original direction, [1] reply
  uint64_t startNs = 0;
  uint8_t labels[16] = {};
  const nlattr* origTupleAttr = nullptr;
};

// Fills e from one IPCTNL_MSG_CT_NEW message; false if it is not a usable entry.
bool parseEntry(const nlmsghdr* nlh, Entry& e);

// Exact original/reply tuple fields for CTA_FILTER: the kernel compares only what is set
// here (dumps since 5.8, flushes since 6.12; see docs/kernel-filters.md). Addresses are
// IPv4 only: the kernel's IPv6 comparison is inverted.
struct TupleFilter {
  bool hasProtocol = false;
  uint8_t protocol = 0;
  bool hasSport = false, hasDport = false;  // original direction, TCP and UDP only
  uint16_t sport = 0, dport = 0;            // host order
  bool hasOrigSrc = false, hasOrigDst = false, hasReplySrc = false, hasReplyDst = false;
  uint8_t origSrc[4] = {}, origDst[4] = {}, replySrc[4] = {}, replyDst[4] = {};

  bool any() const { return hasProtocol || hasOrigSrc || hasOrigDst || hasReplySrc || hasReplyDst; }
};

// The kernel-side part of a dump filter; every field is optional.
struct KernelFilter {
  uint8_t family = 0;
  bool hasMark = false;
  uint32_t mark = 0, markMask = 0;
  bool hasStatus = false;  // only sent on kernels >= 5.15 (the caller decides)
  uint32_t status = 0, statusMask = 0;
  bool hasZone = false;  // only sent on kernels >= 6.8
  uint16_t zone = 0;
  TupleFilter tuple;  // only sent with a family (the kernel refuses a tuple filter without one)
};

struct GlobalStats {
  uint32_t entries = 0, maxEntries = 0;
};
struct CpuStats {
  uint32_t cpu = 0;
  uint32_t found = 0, invalid = 0, insert = 0, insertFailed = 0, drop = 0, earlyDrop = 0, error = 0, searchRestart = 0, clashResolve = 0, chainTooLong = 0;
};
void parseGlobalStats(const nlmsghdr* nlh, GlobalStats& out);
void parseCpuStats(const nlmsghdr* nlh, CpuStats& out);

}  // namespace ctpurge

// The namespace's own policy timeouts, and the age they let us estimate.
#pragma once
#include <cstdint>
#include <vector>

#include "ctMessage.h"

namespace ctpurge {

enum class AgeSource : uint8_t { Unknown = 0, Timestamp = 1, Timeout = 2 };

struct PolicyTimeouts {
  // Indexed by the kernel's state enums; 0 = not available on this kernel (or, in a timeout
  // policy, a protocol the policy is not for).
  uint32_t tcp[14] = {};
  uint32_t sctp[10] = {};
  uint32_t dccp[8] = {};
  uint32_t udp = 0, udpStream = 0, icmp = 0, icmpv6 = 0, generic = 0, gre = 0, greStream = 0;

  // The namespace's timeout policies (nft `ct timeout` objects, and cttimeout objects that
  // iptables' CT --timeout uses): a rule can give a flow one of these instead of the sysctls,
  // so their values are candidates too. Each holds one protocol's values.
  std::vector<PolicyTimeouts> policies;

  // Reads /proc/sys/net/netfilter/nf_conntrack_*_timeout*, and the timeout policies over
  // netlink. Both belong to the network namespace of the calling thread, so call this inside
  // the target namespace. A policy dump the kernel refuses throws (SysError): an estimate
  // without them could take a busy flow for an idle one.
  static PolicyTimeouts readFromProc();
};

struct Age {
  double seconds = 0;  // NaN when unknown
  AgeSource source = AgeSource::Unknown;
  bool known() const { return source != AgeSource::Unknown && seconds == seconds; }
};

// The two times an entry has, which conditions must never confuse:
//  idle: since the last packet that refreshed the timeout. Estimated from the seconds left:
//        the smallest timeout the kernel could have applied that is >= the seconds left
//        (the sysctls and the namespace's timeout policies), minus the seconds left. None
//        qualifies (a timeout set by hand above them all), no CTA_TIMEOUT (offloaded
//        entries), or a helper that sets its own timeouts (Entry.helperTimeout) -> unknown.
//        Timestamps don't help: the kernel records the start, not the last packet.
//  age:  since creation. Exact from the start timestamp (nf_conntrack_timestamp=1 when the
//        entry was created). Without one, the idle estimate, which is a lower bound of the
//        age: an age condition then never takes an entry younger than it says.
// Unknown values never match a condition.
struct Ages {
  Age idle;
  Age age;
};
Ages estimateAges(const Entry& e, const PolicyTimeouts& t, uint64_t nowRealtimeNs);

// The same estimate from plain values, for unit tests and the age shown for one entry.
Age estimateAgeFromTimeout(uint8_t protocol, uint8_t family, uint8_t state, uint32_t secondsLeft, const PolicyTimeouts& t);

uint64_t realtimeNowNs();

// /proc/sys/net/netfilter/nf_conntrack_<name> of the calling thread's namespace; -1 if absent.
long readConntrackSysctl(const char* name);

}  // namespace ctpurge

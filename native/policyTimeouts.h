// The namespace's own policy timeouts, and the age they let us estimate.
#pragma once
#include <cstdint>

#include "ctMessage.h"

namespace ctpurge {

enum class AgeSource : uint8_t { Unknown = 0, Timestamp = 1, Timeout = 2 };

struct PolicyTimeouts {
  // Indexed by the kernel's state enums; 0 = not available on this kernel.
  uint32_t tcp[14] = {};
  uint32_t sctp[10] = {};
  uint32_t udp = 0, udpStream = 0, icmp = 0, icmpv6 = 0, generic = 0, gre = 0, greStream = 0;

  // Reads /proc/sys/net/netfilter/nf_conntrack_*_timeout*. /proc/sys/net belongs to the
  // network namespace of the thread that opens the file, so call this inside the target
  // namespace.
  static PolicyTimeouts readFromProc();
};

struct Age {
  double seconds = 0;  // NaN when unknown
  AgeSource source = AgeSource::Unknown;
};

// Exact from the start timestamp when there is one. Otherwise the conservative estimate:
// the smallest policy timeout the kernel could have applied that is >= the seconds left;
// none qualifies -> unknown (an unknown age never matches an age condition).
Age estimateAge(const Entry& e, const PolicyTimeouts& t, uint64_t nowRealtimeNs);

// The same estimate from plain values, for unit tests and the age shown for one entry.
Age estimateAgeFromTimeout(uint8_t protocol, uint8_t family, uint8_t state, uint32_t secondsLeft,
                           const PolicyTimeouts& t);

uint64_t realtimeNowNs();

// /proc/sys/net/netfilter/nf_conntrack_<name> of the calling thread's namespace; -1 if absent.
long readConntrackSysctl(const char* name);

}  // namespace ctpurge

// The kernel's numbers by name, for the text formats (entryText.h) and exported to TypeScript as
// `names`, where a unit test holds src/protocols.ts to them: one list each, checked, not copied
// by hand.
#pragma once
#include <cstddef>
#include <cstdint>
#include <iterator>

namespace ctpurge::names {

struct Protocol {
  uint8_t number;
  const char* name;
};
inline constexpr Protocol kProtocols[] = {{1, "icmp"}, {6, "tcp"}, {17, "udp"}, {33, "dccp"}, {47, "gre"}, {58, "icmpv6"}, {132, "sctp"}, {136, "udplite"}};

// enum tcp_conntrack, enum sctp_conntrack, enum ct_dccp_states
inline constexpr const char* kTcp[] = {"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"};
inline constexpr const char* kSctp[] = {"NONE",          "CLOSED",        "COOKIE_WAIT",       "COOKIE_ECHOED", "ESTABLISHED",
                                        "SHUTDOWN_SENT", "SHUTDOWN_RECD", "SHUTDOWN_ACK_SENT", "HEARTBEAT_SENT"};
inline constexpr const char* kDccp[] = {"NONE", "REQUEST", "RESPOND", "PARTOPEN", "OPEN", "CLOSEREQ", "CLOSING", "TIMEWAIT"};
// IPS_* bits, in bit order.
inline constexpr const char* kStatus[] = {"expected",   "seenReply", "assured",      "confirmed", "srcNat",   "dstNat", "seqAdjust", "srcNatDone",
                                          "dstNatDone", "dying",     "fixedTimeout", "template",  "natClash", "helper", "offload",   "hwOffload"};
inline constexpr const char* kAgeSource[] = {"unknown", "timestamp", "timeout"};

inline const char* protocolName(uint8_t p) {
  for (const Protocol& x : kProtocols) {
    if (x.number == p) return x.name;
  }
  return nullptr;
}

}  // namespace ctpurge::names

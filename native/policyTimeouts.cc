#include "policyTimeouts.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <string>

namespace ctpurge {
namespace {

// Kernel enum tcp_conntrack indices.
enum : int {
  kTcpSynSent = 1,
  kTcpSynRecv,
  kTcpEstablished,
  kTcpFinWait,
  kTcpCloseWait,
  kTcpLastAck,
  kTcpTimeWait,
  kTcpClose,
  kTcpSynSent2,
  kTcpRetrans = 12,
  kTcpUnack = 13
};

uint32_t readSysctl(const char* name) {
  long v = readConntrackSysctl(name);
  return v > 0 ? static_cast<uint32_t>(v) : 0;
}

}  // namespace

long readConntrackSysctl(const char* name) {
  std::string path = std::string("/proc/sys/net/netfilter/nf_conntrack_") + name;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[32] = {};
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return -1;
  return std::strtol(buf, nullptr, 10);
}

PolicyTimeouts PolicyTimeouts::readFromProc() {
  PolicyTimeouts t;
  t.tcp[kTcpSynSent] = readSysctl("tcp_timeout_syn_sent");
  t.tcp[kTcpSynRecv] = readSysctl("tcp_timeout_syn_recv");
  t.tcp[kTcpEstablished] = readSysctl("tcp_timeout_established");
  t.tcp[kTcpFinWait] = readSysctl("tcp_timeout_fin_wait");
  t.tcp[kTcpCloseWait] = readSysctl("tcp_timeout_close_wait");
  t.tcp[kTcpLastAck] = readSysctl("tcp_timeout_last_ack");
  t.tcp[kTcpTimeWait] = readSysctl("tcp_timeout_time_wait");
  t.tcp[kTcpClose] = readSysctl("tcp_timeout_close");
  // SYN_SENT2 has no sysctl of its own; the kernel's default equals SYN_SENT's.
  t.tcp[kTcpSynSent2] = t.tcp[kTcpSynSent];
  t.tcp[kTcpRetrans] = readSysctl("tcp_timeout_max_retrans");
  t.tcp[kTcpUnack] = readSysctl("tcp_timeout_unacknowledged");
  static const char* const sctpNames[] = {nullptr,
                                          "sctp_timeout_closed",
                                          "sctp_timeout_cookie_wait",
                                          "sctp_timeout_cookie_echoed",
                                          "sctp_timeout_established",
                                          "sctp_timeout_shutdown_sent",
                                          "sctp_timeout_shutdown_recd",
                                          "sctp_timeout_shutdown_ack_sent",
                                          "sctp_timeout_heartbeat_sent"};
  for (int i = 1; i < 9; i++) t.sctp[i] = readSysctl(sctpNames[i]);
  t.udp = readSysctl("udp_timeout");
  t.udpStream = readSysctl("udp_timeout_stream");
  t.icmp = readSysctl("icmp_timeout");
  t.icmpv6 = readSysctl("icmpv6_timeout");
  t.generic = readSysctl("generic_timeout");
  t.gre = readSysctl("gre_timeout");
  t.greStream = readSysctl("gre_timeout_stream");
  return t;
}

uint64_t realtimeNowNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

Age estimateAgeFromTimeout(uint8_t protocol, uint8_t family, uint8_t state, uint32_t left, const PolicyTimeouts& t) {
  uint32_t candidates[4] = {};
  int n = 0;
  switch (protocol) {
    case IPPROTO_TCP:
      if (state < 14) candidates[n++] = t.tcp[state];
      // The kernel may have capped the state's timeout: never-replied pickups and unacked
      // data at timeout_unacknowledged, retransmissions at timeout_max_retrans.
      candidates[n++] = t.tcp[kTcpUnack];
      candidates[n++] = t.tcp[kTcpRetrans];
      break;
    case IPPROTO_UDP:
    case IPPROTO_UDPLITE:
      candidates[n++] = t.udp;
      candidates[n++] = t.udpStream;
      break;
    case IPPROTO_ICMP: candidates[n++] = t.icmp; break;
    case IPPROTO_ICMPV6: candidates[n++] = t.icmpv6; break;
    case IPPROTO_SCTP:
      if (state < 10) candidates[n++] = t.sctp[state];
      break;
    case IPPROTO_GRE:
      candidates[n++] = t.gre;
      candidates[n++] = t.greStream;
      break;
    default: candidates[n++] = t.generic; break;
  }
  (void)family;
  uint32_t best = 0;
  for (int i = 0; i < n; i++) {
    const uint32_t c = candidates[i];
    if (c == 0 || c < left) continue;
    if (best == 0 || c < best) best = c;
  }
  Age age;
  if (best == 0) {
    age.seconds = std::numeric_limits<double>::quiet_NaN();
    return age;
  }
  age.seconds = static_cast<double>(best - left);
  age.source = AgeSource::Timeout;
  return age;
}

Ages estimateAges(const Entry& e, const PolicyTimeouts& t, uint64_t nowNs) {
  Ages a;
  if (e.hasTimeout) {
    a.idle = estimateAgeFromTimeout(e.protocol, e.family, e.state, e.timeout, t);
  } else {
    a.idle.seconds = std::numeric_limits<double>::quiet_NaN();
  }
  if (e.hasStart) {
    a.age.source = AgeSource::Timestamp;
    a.age.seconds = nowNs > e.startNs ? static_cast<double>(nowNs - e.startNs) / 1e9 : 0.0;
  } else {
    a.age = a.idle;
  }
  return a;
}

}  // namespace ctpurge

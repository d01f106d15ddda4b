#include "policyTimeouts.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_cttimeout.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <limits>
#include <string>

#include "attrWalk.h"
#include "netlinkSocket.h"

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

constexpr uint8_t kGenericProtocol = 255;  // the generic tracker's number in timeout policies
constexpr uint8_t kDccpProtocol = 33;

uint32_t readSysctl(const char* name) {
  long v = readConntrackSysctl(name);
  return v > 0 ? static_cast<uint32_t>(v) : 0;
}

bool exists(const char* path) {
  struct stat st {};
  return ::stat(path, &st) == 0;
}

bool listedIn(const std::string& file, const std::string& needle) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(needle) != std::string::npos) return true;
  }
  return false;
}

// Whether the kernel has `module` (loaded or built in). A request to a netfilter subsystem it
// lacks would make the kernel load that module: asking must never change the host. A kernel
// without loadable modules (no /proc/modules) has whatever it has built in.
bool kernelHas(const char* module) {
  if (!exists("/proc/modules")) return true;
  if (listedIn("/proc/modules", std::string(module) + " ")) return true;
  if (exists((std::string("/sys/module/") + module).c_str())) return true;
  utsname u{};
  if (::uname(&u) != 0) return false;
  return listedIn(std::string("/lib/modules/") + u.release + "/modules.builtin", std::string("/") + module + ".ko");
}

// One policy's values (CTA_TIMEOUT_DATA, NFTA_CT_TIMEOUT_DATA: the same attributes) into
// the fields of its protocol.
PolicyTimeouts policyOf(uint8_t l4proto, const nlattr* data) {
  PolicyTimeouts p;
  forEachNested(data, [&](const nlattr* a) {
    if (!payloadAtLeast(a, 4)) return;
    const uint16_t type = mnl_attr_get_type(a);
    const uint32_t v = ntohl(mnl_attr_get_u32(a));
    switch (l4proto) {
      case IPPROTO_TCP:
        // Attributes 1-9 are states 1-9 (SYN_SENT..SYN_SENT2); 10 and 11 are RETRANS and UNACK.
        if (type >= CTA_TIMEOUT_TCP_SYN_SENT && type <= CTA_TIMEOUT_TCP_SYN_SENT2) p.tcp[type] = v;
        if (type == CTA_TIMEOUT_TCP_RETRANS) p.tcp[12] = v;
        if (type == CTA_TIMEOUT_TCP_UNACK) p.tcp[13] = v;
        break;
      case IPPROTO_UDP:
      case IPPROTO_UDPLITE:
        if (type == CTA_TIMEOUT_UDP_UNREPLIED) p.udp = v;
        if (type == CTA_TIMEOUT_UDP_REPLIED) p.udpStream = v;
        break;
      case IPPROTO_SCTP:
        if (type >= 1 && type < 10) p.sctp[type] = v;
        break;
      case kDccpProtocol:
        if (type >= CTA_TIMEOUT_DCCP_REQUEST && type <= CTA_TIMEOUT_DCCP_TIMEWAIT) p.dccp[type] = v;
        break;
      case IPPROTO_GRE:
        if (type == 1) p.gre = v;
        if (type == 2) p.greStream = v;
        break;
      case IPPROTO_ICMP:
        if (type == CTA_TIMEOUT_ICMP_TIMEOUT) p.icmp = v;
        break;
      case IPPROTO_ICMPV6:
        if (type == 1) p.icmpv6 = v;
        break;
      case kGenericProtocol:
        if (type == CTA_TIMEOUT_GENERIC_TIMEOUT) p.generic = v;
        break;
      default: break;
    }
  });
  return p;
}

void dumpPolicies(NetlinkSocket& s, uint16_t subsys, uint8_t msg, bool nftObjects, std::vector<PolicyTimeouts>& out) {
  char buf[MNL_SOCKET_BUFFER_SIZE] = {};
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = static_cast<uint16_t>((subsys << 8) | msg);
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nlh->nlmsg_seq = s.nextSeq();
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = AF_UNSPEC;
  nfg->version = NFNETLINK_V0;
  if (nftObjects) mnl_attr_put_u32(nlh, NFTA_OBJ_TYPE, htonl(NFT_OBJECT_CT_TIMEOUT));
  s.request(nlh, "timeout policies", [&](const nlmsghdr* m) {
    if ((m->nlmsg_type >> 8) != subsys || m->nlmsg_len < NLMSG_LENGTH(sizeof(nfgenmsg))) return;
    // cttimeout: the protocol and values at the top; nft: inside NFTA_OBJ_DATA.
    const nlattr* object = nullptr;
    bool ctTimeout = !nftObjects;
    forEachAttr(m, sizeof(nfgenmsg), [&](const nlattr* a) {
      if (nftObjects && mnl_attr_get_type(a) == NFTA_OBJ_TYPE && payloadAtLeast(a, 4)) ctTimeout = ntohl(mnl_attr_get_u32(a)) == NFT_OBJECT_CT_TIMEOUT;
      if (nftObjects && mnl_attr_get_type(a) == NFTA_OBJ_DATA) object = a;
    });
    if (!ctTimeout) return;
    int l4proto = -1;
    const nlattr* data = nullptr;
    const uint16_t protoType = nftObjects ? uint16_t{NFTA_CT_TIMEOUT_L4PROTO} : uint16_t{CTA_TIMEOUT_L4PROTO};
    const uint16_t dataType = nftObjects ? uint16_t{NFTA_CT_TIMEOUT_DATA} : uint16_t{CTA_TIMEOUT_DATA};
    auto take = [&](const nlattr* a) {
      const uint16_t type = mnl_attr_get_type(a);
      if (type == protoType && payloadAtLeast(a, 1)) l4proto = mnl_attr_get_u8(a);
      if (type == dataType) data = a;
    };
    if (nftObjects) {
      if (object) forEachNested(object, take);
    } else {
      forEachAttr(m, sizeof(nfgenmsg), take);
    }
    if (l4proto >= 0 && data) out.push_back(policyOf(static_cast<uint8_t>(l4proto), data));
  });
}

// The namespace's timeout policies, from each kernel part that holds them, where the kernel
// has it.
std::vector<PolicyTimeouts> readPolicies() {
  std::vector<PolicyTimeouts> out;
  const bool cttimeout = kernelHas("nfnetlink_cttimeout");
  const bool nft = kernelHas("nft_ct");
  if (!cttimeout && !nft) return out;
  NetlinkSocket s = NetlinkSocket::open(-1, "timeout policies");
  if (cttimeout) dumpPolicies(s, NFNL_SUBSYS_CTNETLINK_TIMEOUT, IPCTNL_MSG_TIMEOUT_GET, false, out);
  if (nft) dumpPolicies(s, NFNL_SUBSYS_NFTABLES, NFT_MSG_GETOBJ, true, out);
  return out;
}

// The smallest candidate timeout of t for this entry that is >= left; 0 when none is.
uint32_t smallestFitting(const PolicyTimeouts& t, uint8_t protocol, uint8_t state, uint32_t left) {
  uint32_t candidates[8] = {};
  int n = 0;
  auto all = [&](const uint32_t* values, int count) {
    for (int i = 0; i < count && n < 8; i++) candidates[n++] = values[i];
  };
  switch (protocol) {
    case IPPROTO_TCP:
      if (state < 14) candidates[n++] = t.tcp[state];
      // The kernel may have capped the state's timeout: never-replied pickups and unacked
      // data at timeout_unacknowledged, retransmissions at timeout_max_retrans, and a packet
      // with RST (an out-of-window one leaves the state as it was) at timeout_close.
      candidates[n++] = t.tcp[kTcpUnack];
      candidates[n++] = t.tcp[kTcpRetrans];
      candidates[n++] = t.tcp[kTcpClose];
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
    case kDccpProtocol:
      // Every DCCP timeout: the state read may be older than the timeout applied. A kernel
      // without DCCP tracking (none set) tracks it as generic.
      all(t.dccp + 1, 7);
      if (std::all_of(t.dccp + 1, t.dccp + 8, [](uint32_t v) { return v == 0; })) candidates[n++] = t.generic;
      break;
    case IPPROTO_GRE:
      candidates[n++] = t.gre;
      candidates[n++] = t.greStream;
      break;
    default: candidates[n++] = t.generic; break;
  }
  uint32_t best = 0;
  for (int i = 0; i < n; i++) {
    const uint32_t c = candidates[i];
    if (c == 0 || c < left) continue;
    if (best == 0 || c < best) best = c;
  }
  return best;
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
  static const char* const dccpNames[] = {nullptr,
                                          "dccp_timeout_request",
                                          "dccp_timeout_respond",
                                          "dccp_timeout_partopen",
                                          "dccp_timeout_open",
                                          "dccp_timeout_closereq",
                                          "dccp_timeout_closing",
                                          "dccp_timeout_timewait"};
  for (int i = 1; i < 8; i++) t.dccp[i] = readSysctl(dccpNames[i]);
  t.policies = readPolicies();
  return t;
}

uint64_t realtimeNowNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

Age estimateAgeFromTimeout(uint8_t protocol, uint8_t family, uint8_t state, uint32_t left, const PolicyTimeouts& t) {
  (void)family;
  // The sysctls, then each timeout policy: the smallest that fits of them all.
  uint32_t best = smallestFitting(t, protocol, state, left);
  for (const PolicyTimeouts& p : t.policies) {
    const uint32_t c = smallestFitting(p, protocol, state, left);
    if (c != 0 && (best == 0 || c < best)) best = c;
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
  if (e.hasTimeout && !e.helperTimeout) {
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

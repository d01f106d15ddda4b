#include "ctMessage.h"

#include <arpa/inet.h>
#include <endian.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <sys/socket.h>

#include <cstring>

namespace ctpurge {
namespace {

uint16_t be16(const nlattr* a) { return ntohs(mnl_attr_get_u16(a)); }
uint32_t be32(const nlattr* a) { return ntohl(mnl_attr_get_u32(a)); }
uint64_t be64(const nlattr* a) { return be64toh(mnl_attr_get_u64(a)); }

// libmnl's iteration macros do arithmetic on void*, which C++ rejects; these walks do the
// same and let unknown attributes (newer kernels) pass untouched.
template <typename Fn>
void forEachIn(const nlattr* first, int len, Fn&& fn) {
  for (const nlattr* a = first; mnl_attr_ok(a, len); a = mnl_attr_next(a)) {
    len -= static_cast<int>(MNL_ALIGN(a->nla_len));
    fn(a);
  }
}

template <typename Fn>
void forEachNested(const nlattr* nest, Fn&& fn) {
  forEachIn(static_cast<const nlattr*>(mnl_attr_get_payload(nest)), static_cast<int>(mnl_attr_get_payload_len(nest)), fn);
}

template <typename Fn>
void forEachAttr(const nlmsghdr* nlh, size_t offset, Fn&& fn) {
  forEachIn(static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, offset)),
            static_cast<int>(nlh->nlmsg_len - MNL_NLMSG_HDRLEN - MNL_ALIGN(offset)), fn);
}

bool payloadAtLeast(const nlattr* a, size_t n) { return mnl_attr_get_payload_len(a) >= n; }

void parseIp(const nlattr* nest, Tuple& t) {
  forEachNested(nest, [&](const nlattr* a) {
    switch (mnl_attr_get_type(a)) {
      case CTA_IP_V4_SRC: if (payloadAtLeast(a, 4)) std::memcpy(t.src, mnl_attr_get_payload(a), 4); break;
      case CTA_IP_V4_DST: if (payloadAtLeast(a, 4)) std::memcpy(t.dst, mnl_attr_get_payload(a), 4); break;
      case CTA_IP_V6_SRC: if (payloadAtLeast(a, 16)) std::memcpy(t.src, mnl_attr_get_payload(a), 16); break;
      case CTA_IP_V6_DST: if (payloadAtLeast(a, 16)) std::memcpy(t.dst, mnl_attr_get_payload(a), 16); break;
      default: break;
    }
  });
}

void parseProto(const nlattr* nest, Tuple& t, uint8_t& protocol) {
  forEachNested(nest, [&](const nlattr* a) {
    switch (mnl_attr_get_type(a)) {
      case CTA_PROTO_NUM: if (payloadAtLeast(a, 1)) protocol = mnl_attr_get_u8(a); break;
      case CTA_PROTO_SRC_PORT: if (payloadAtLeast(a, 2)) { t.sport = be16(a); t.hasPorts = true; } break;
      case CTA_PROTO_DST_PORT: if (payloadAtLeast(a, 2)) { t.dport = be16(a); t.hasPorts = true; } break;
      case CTA_PROTO_ICMP_ID:
      case CTA_PROTO_ICMPV6_ID: if (payloadAtLeast(a, 2)) { t.icmpId = be16(a); t.hasIcmp = true; } break;
      case CTA_PROTO_ICMP_TYPE:
      case CTA_PROTO_ICMPV6_TYPE: if (payloadAtLeast(a, 1)) { t.icmpType = mnl_attr_get_u8(a); t.hasIcmp = true; } break;
      case CTA_PROTO_ICMP_CODE:
      case CTA_PROTO_ICMPV6_CODE: if (payloadAtLeast(a, 1)) { t.icmpCode = mnl_attr_get_u8(a); t.hasIcmp = true; } break;
      default: break;
    }
  });
}

void parseTuple(const nlattr* nest, Tuple& t, uint8_t& protocol, uint16_t& zone) {
  forEachNested(nest, [&](const nlattr* a) {
    switch (mnl_attr_get_type(a)) {
      case CTA_TUPLE_IP: parseIp(a, t); break;
      case CTA_TUPLE_PROTO: parseProto(a, t, protocol); break;
      case CTA_TUPLE_ZONE: if (payloadAtLeast(a, 2)) zone = be16(a); break;
      default: break;
    }
  });
}

void parseProtoinfo(const nlattr* nest, Entry& e) {
  forEachNested(nest, [&](const nlattr* a) {
    const uint16_t kind = mnl_attr_get_type(a);
    if (kind != CTA_PROTOINFO_TCP && kind != CTA_PROTOINFO_SCTP && kind != CTA_PROTOINFO_DCCP) return;
    // CTA_PROTOINFO_{TCP,SCTP,DCCP}_STATE are all attribute 1.
    forEachNested(a, [&](const nlattr* s) {
      if (mnl_attr_get_type(s) == 1 && payloadAtLeast(s, 1)) e.state = mnl_attr_get_u8(s);
    });
  });
}

void parseCounters(const nlattr* nest, Entry& e, int dir) {
  forEachNested(nest, [&](const nlattr* a) {
    switch (mnl_attr_get_type(a)) {
      case CTA_COUNTERS_PACKETS: if (payloadAtLeast(a, 8)) e.packets[dir] = be64(a); break;
      case CTA_COUNTERS_BYTES: if (payloadAtLeast(a, 8)) e.bytes[dir] = be64(a); break;
      case CTA_COUNTERS32_PACKETS: if (payloadAtLeast(a, 4)) e.packets[dir] = be32(a); break;
      case CTA_COUNTERS32_BYTES: if (payloadAtLeast(a, 4)) e.bytes[dir] = be32(a); break;
      default: break;
    }
  });
  e.hasCounters = true;
}

void parseTimestamp(const nlattr* nest, Entry& e) {
  forEachNested(nest, [&](const nlattr* a) {
    if (mnl_attr_get_type(a) == CTA_TIMESTAMP_START && payloadAtLeast(a, 8)) {
      e.startNs = be64(a);
      e.hasStart = e.startNs != 0;
    }
  });
}

nlmsghdr* putHeader(char* buf, uint16_t msgType, uint16_t flags, uint32_t seq, uint8_t family, uint8_t version) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = static_cast<uint16_t>((NFNL_SUBSYS_CTNETLINK << 8) | msgType);
  nlh->nlmsg_flags = flags;
  nlh->nlmsg_seq = seq;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = family;
  nfg->version = version;
  nfg->res_id = 0;
  return nlh;
}

// CTA_FILTER_ORIG_FLAGS / CTA_FILTER_REPLY_FLAGS bits. The kernel keeps these out of its
// uapi headers (CTA_FILTER_F_* in nf_conntrack_netlink.c); the values are fixed since 5.8.
constexpr uint32_t kFilterIpSrc = 1u << 0;
constexpr uint32_t kFilterIpDst = 1u << 1;
constexpr uint32_t kFilterProtoNum = 1u << 3;
constexpr uint32_t kFilterSrcPort = 1u << 4;
constexpr uint32_t kFilterDstPort = 1u << 5;

void putTupleIp(nlmsghdr* nlh, bool hasSrc, const uint8_t* src, bool hasDst, const uint8_t* dst) {
  if (!hasSrc && !hasDst) return;
  nlattr* ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
  if (hasSrc) mnl_attr_put(nlh, CTA_IP_V4_SRC, 4, src);
  if (hasDst) mnl_attr_put(nlh, CTA_IP_V4_DST, 4, dst);
  mnl_attr_nest_end(nlh, ip);
}

// Values go in CTA_TUPLE_ORIG / CTA_TUPLE_REPLY, the fields to compare in CTA_FILTER.
// Addresses are IPv4 only (the caller clears them for other families).
void putTupleFilter(nlmsghdr* nlh, const TupleFilter& t) {
  uint32_t orig = 0, reply = 0;
  if (t.hasOrigSrc) orig |= kFilterIpSrc;
  if (t.hasOrigDst) orig |= kFilterIpDst;
  if (t.hasProtocol) orig |= kFilterProtoNum;
  // Port flags without CTA_PROTO_NUM are refused (EINVAL): never one without the other.
  if (t.hasProtocol && t.hasSport) orig |= kFilterSrcPort;
  if (t.hasProtocol && t.hasDport) orig |= kFilterDstPort;
  if (t.hasReplySrc) reply |= kFilterIpSrc;
  if (t.hasReplyDst) reply |= kFilterIpDst;
  if (orig == 0 && reply == 0) return;
  if (orig) {
    nlattr* nest = mnl_attr_nest_start(nlh, CTA_TUPLE_ORIG);
    putTupleIp(nlh, t.hasOrigSrc, t.origSrc, t.hasOrigDst, t.origDst);
    if (t.hasProtocol) {
      nlattr* proto = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
      mnl_attr_put_u8(nlh, CTA_PROTO_NUM, t.protocol);
      if (orig & kFilterSrcPort) mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(t.sport));
      if (orig & kFilterDstPort) mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(t.dport));
      mnl_attr_nest_end(nlh, proto);
    }
    mnl_attr_nest_end(nlh, nest);
  }
  if (reply) {
    nlattr* nest = mnl_attr_nest_start(nlh, CTA_TUPLE_REPLY);
    putTupleIp(nlh, t.hasReplySrc, t.replySrc, t.hasReplyDst, t.replyDst);
    mnl_attr_nest_end(nlh, nest);
  }
  nlattr* filter = mnl_attr_nest_start(nlh, CTA_FILTER);
  // Host byte order: the kernel reads these with nla_get_u32.
  mnl_attr_put_u32(nlh, CTA_FILTER_ORIG_FLAGS, orig);
  mnl_attr_put_u32(nlh, CTA_FILTER_REPLY_FLAGS, reply);
  mnl_attr_nest_end(nlh, filter);
}

void putFilter(nlmsghdr* nlh, const KernelFilter& f) {
  if (f.hasMark) {
    mnl_attr_put_u32(nlh, CTA_MARK, htonl(f.mark));
    mnl_attr_put_u32(nlh, CTA_MARK_MASK, htonl(f.markMask));
  }
  // The kernel rejects a zero status mask (EINVAL), so only a real condition is sent.
  if (f.hasStatus && f.statusMask != 0) {
    mnl_attr_put_u32(nlh, CTA_STATUS, htonl(f.status));
    mnl_attr_put_u32(nlh, kCtaStatusMask, htonl(f.statusMask));
  }
  if (f.hasZone) mnl_attr_put_u16(nlh, CTA_ZONE, htons(f.zone));
  // The kernel compares tuple addresses by the request's family and answers EOPNOTSUPP to
  // a tuple filter without one.
  if ((f.family == AF_INET || f.family == AF_INET6) && f.tuple.any()) {
    TupleFilter t = f.tuple;
    if (f.family != AF_INET) t.hasOrigSrc = t.hasOrigDst = t.hasReplySrc = t.hasReplyDst = false;
    putTupleFilter(nlh, t);
  }
}

}  // namespace

bool parseEntry(const nlmsghdr* nlh, Entry& e) {
  // Dumps and new/update events are CT_NEW; destroy events are CT_DELETE.
  const uint16_t type = nlh->nlmsg_type & 0xff;
  if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_CTNETLINK || (type != IPCTNL_MSG_CT_NEW && type != IPCTNL_MSG_CT_DELETE)) return false;
  if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(nfgenmsg))) return false;
  e = Entry{};
  const auto* nfg = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
  e.family = nfg->nfgen_family;
  forEachAttr(nlh, sizeof(nfgenmsg), [&](const nlattr* a) {
    switch (mnl_attr_get_type(a)) {
      case CTA_TUPLE_ORIG: parseTuple(a, e.orig, e.protocol, e.origZone); e.origTupleAttr = a; break;
      case CTA_TUPLE_REPLY: { uint8_t p = 0; parseTuple(a, e.reply, p, e.replyZone); break; }
      case CTA_STATUS: if (payloadAtLeast(a, 4)) e.status = be32(a); break;
      case CTA_PROTOINFO: parseProtoinfo(a, e); break;
      case CTA_TIMEOUT: if (payloadAtLeast(a, 4)) { e.timeout = be32(a); e.hasTimeout = true; } break;
      case CTA_MARK: if (payloadAtLeast(a, 4)) e.mark = be32(a); break;
      case CTA_COUNTERS_ORIG: parseCounters(a, e, 0); break;
      case CTA_COUNTERS_REPLY: parseCounters(a, e, 1); break;
      case CTA_ID: if (payloadAtLeast(a, 4)) { e.id = be32(a); e.hasId = true; } break;
      case CTA_ZONE: if (payloadAtLeast(a, 2)) e.zone = be16(a); break;
      case CTA_TIMESTAMP: parseTimestamp(a, e); break;
      case CTA_LABELS: {
        size_t n = mnl_attr_get_payload_len(a);
        if (n > sizeof e.labels) n = sizeof e.labels;
        std::memcpy(e.labels, mnl_attr_get_payload(a), n);
        for (size_t i = 0; i < n; i++) if (e.labels[i]) e.hasLabels = true;
        break;
      }
      default: break;
    }
  });
  return e.origTupleAttr != nullptr;
}

nlmsghdr* buildDumpRequest(char* buf, uint32_t seq, const KernelFilter& f) {
  nlmsghdr* nlh = putHeader(buf, IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, seq, f.family, NFNETLINK_V0);
  putFilter(nlh, f);
  return nlh;
}

nlmsghdr* buildFlushRequest(char* buf, uint32_t seq, const KernelFilter& f) {
  nlmsghdr* nlh = putHeader(buf, IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, seq, f.family, 1);
  putFilter(nlh, f);
  return nlh;
}

nlmsghdr* buildStatsRequest(char* buf, uint32_t seq, bool perCpu) {
  return putHeader(buf, perCpu ? IPCTNL_MSG_CT_GET_STATS_CPU : IPCTNL_MSG_CT_GET_STATS,
                   perCpu ? NLM_F_REQUEST | NLM_F_DUMP : NLM_F_REQUEST | NLM_F_ACK, seq, AF_UNSPEC, NFNETLINK_V0);
}

size_t entryRequestSize(const Entry& e) {
  if (!e.origTupleAttr) return 0;
  // CTA_ID and CTA_TIMEOUT are both a u32.
  return MNL_ALIGN(sizeof(nlmsghdr)) + MNL_ALIGN(sizeof(nfgenmsg)) + MNL_ALIGN(e.origTupleAttr->nla_len) +
         MNL_ALIGN(MNL_ATTR_HDRLEN + 2) + MNL_ALIGN(MNL_ATTR_HDRLEN + 4);
}

bool appendEntryRequest(std::vector<char>& out, const Entry& e, uint32_t seq, EntryRequest kind, uint32_t timeout) {
  const size_t size = entryRequestSize(e);
  if (size == 0) return false;
  const size_t at = out.size();
  out.resize(at + size);
  char* buf = out.data() + at;
  std::memset(buf, 0, size);
  // Without NLM_F_CREATE, a CT_NEW changes an existing entry and answers ENOENT for a gone one.
  const uint16_t type = kind == EntryRequest::Delete ? IPCTNL_MSG_CT_DELETE : IPCTNL_MSG_CT_NEW;
  nlmsghdr* nlh = putHeader(buf, type, NLM_F_REQUEST, seq, e.family, NFNETLINK_V0);
  // The tuple goes back exactly as the kernel wrote it; it parses its own encoding, with the
  // CTA_TUPLE_ZONE of an original-direction zone inside it. CTA_ZONE below carries only a
  // zone of both directions (0 otherwise): the kernel refuses a tuple zone on top of a
  // non-zero CTA_ZONE (EINVAL), and looks a reply-direction zone's entry up in zone 0, where
  // its original direction is.
  const size_t tupleLen = e.origTupleAttr->nla_len;
  std::memcpy(static_cast<char*>(mnl_nlmsg_get_payload_tail(nlh)), e.origTupleAttr, tupleLen);
  nlh->nlmsg_len += MNL_ALIGN(tupleLen);
  // Without CTA_ZONE the kernel looks in zone 0.
  mnl_attr_put_u16(nlh, CTA_ZONE, htons(e.zone));
  if (kind == EntryRequest::Delete) mnl_attr_put_u32(nlh, CTA_ID, htonl(e.id));
  else mnl_attr_put_u32(nlh, CTA_TIMEOUT, htonl(timeout));
  out.resize(at + nlh->nlmsg_len);
  return true;
}

void parseGlobalStats(const nlmsghdr* nlh, GlobalStats& out) {
  forEachAttr(nlh, sizeof(nfgenmsg), [&](const nlattr* a) {
    if (!payloadAtLeast(a, 4)) return;
    if (mnl_attr_get_type(a) == CTA_STATS_GLOBAL_ENTRIES) out.entries = be32(a);
    if (mnl_attr_get_type(a) == CTA_STATS_GLOBAL_MAX_ENTRIES) out.maxEntries = be32(a);
  });
}

void parseCpuStats(const nlmsghdr* nlh, CpuStats& out) {
  const auto* nfg = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
  out.cpu = ntohs(nfg->res_id);
  forEachAttr(nlh, sizeof(nfgenmsg), [&](const nlattr* a) {
    if (!payloadAtLeast(a, 4)) return;
    const uint32_t v = be32(a);
    switch (mnl_attr_get_type(a)) {
      case CTA_STATS_FOUND: out.found = v; break;
      case CTA_STATS_INVALID: out.invalid = v; break;
      case CTA_STATS_INSERT: out.insert = v; break;
      case CTA_STATS_INSERT_FAILED: out.insertFailed = v; break;
      case CTA_STATS_DROP: out.drop = v; break;
      case CTA_STATS_EARLY_DROP: out.earlyDrop = v; break;
      case CTA_STATS_ERROR: out.error = v; break;
      case CTA_STATS_SEARCH_RESTART: out.searchRestart = v; break;
      case CTA_STATS_CLASH_RESOLVE: out.clashResolve = v; break;
      case kCtaStatsChainTooLong: out.chainTooLong = v; break;
      default: break;
    }
  });
}

}  // namespace ctpurge

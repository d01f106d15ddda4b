#include "ctRequest.h"

#include <arpa/inet.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "sysError.h"

namespace ctpurge {
namespace {

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

struct NfctDeleter {
  void operator()(nf_conntrack* ct) const { nfct_destroy(ct); }
};
using NfctPtr = std::unique_ptr<nf_conntrack, NfctDeleter>;

struct BitmaskDeleter {
  void operator()(nfct_bitmask* b) const { nfct_bitmask_destroy(b); }
};

// One direction's tuple (the original, or the reply): layer 3 and 4 protocols, addresses
// and, when given, ports.
void setTuple(nf_conntrack* ct, bool reply, const EntrySpec& s, const uint8_t* src, const uint8_t* dst, uint16_t sport, uint16_t dport) {
  nfct_set_attr_u8(ct, reply ? ATTR_REPL_L3PROTO : ATTR_L3PROTO, s.family);
  nfct_set_attr_u8(ct, reply ? ATTR_REPL_L4PROTO : ATTR_L4PROTO, s.protocol);
  if (s.family == AF_INET) {
    uint32_t a, b;
    std::memcpy(&a, src, 4);
    std::memcpy(&b, dst, 4);
    nfct_set_attr_u32(ct, reply ? ATTR_REPL_IPV4_SRC : ATTR_IPV4_SRC, a);
    nfct_set_attr_u32(ct, reply ? ATTR_REPL_IPV4_DST : ATTR_IPV4_DST, b);
  } else {
    nfct_set_attr(ct, reply ? ATTR_REPL_IPV6_SRC : ATTR_IPV6_SRC, src);
    nfct_set_attr(ct, reply ? ATTR_REPL_IPV6_DST : ATTR_IPV6_DST, dst);
  }
  if (s.hasPorts) {
    nfct_set_attr_u16(ct, reply ? ATTR_REPL_PORT_SRC : ATTR_PORT_SRC, htons(sport));
    nfct_set_attr_u16(ct, reply ? ATTR_REPL_PORT_DST : ATTR_PORT_DST, htons(dport));
  }
}

NfctPtr toNfct(const EntrySpec& s, bool forCreate) {
  NfctPtr ct(nfct_new());
  if (!ct) throw SysError::fromErrno(ENOMEM, "", "build", "nfct_new failed");
  nf_conntrack* c = ct.get();
  setTuple(c, false, s, s.src, s.dst, s.sport, s.dport);
  if (s.hasIcmp) {
    nfct_set_attr_u8(c, ATTR_ICMP_TYPE, s.icmpType);
    nfct_set_attr_u8(c, ATTR_ICMP_CODE, s.icmpCode);
    nfct_set_attr_u16(c, ATTR_ICMP_ID, htons(s.icmpId));
  }
  if (s.hasZone) nfct_set_attr_u16(c, ATTR_ZONE, s.zone);
  // A zone of one direction travels inside that direction's tuple (CTA_TUPLE_ZONE).
  if (s.hasOrigZone && s.origZone) nfct_set_attr_u16(c, ATTR_ORIG_ZONE, s.origZone);
  if (forCreate && s.hasReplyZone && s.replyZone) nfct_set_attr_u16(c, ATTR_REPL_ZONE, s.replyZone);
  if (!forCreate) return ct;

  // The kernel insists on a reply tuple for new entries; the inverse of the original is
  // what it would have seen for an un-NATed flow (ICMP types mapped by the library).
  if (s.hasReply) {
    setTuple(c, true, s, s.replySrc, s.replyDst, s.replySport, s.replyDport);
  } else {
    nfct_setobjopt(c, NFCT_SOPT_SETUP_REPLY);
  }
  if (s.hasState) {
    if (s.protocol == IPPROTO_TCP)
      nfct_set_attr_u8(c, ATTR_TCP_STATE, s.state);
    else if (s.protocol == IPPROTO_SCTP) {
      // ctnetlink insists on both verification tags alongside an SCTP state (EINVAL otherwise).
      nfct_set_attr_u8(c, ATTR_SCTP_STATE, s.state);
      nfct_set_attr_u32(c, ATTR_SCTP_VTAG_ORIG, 0);
      nfct_set_attr_u32(c, ATTR_SCTP_VTAG_REPL, 0);
    } else if (s.protocol == IPPROTO_DCCP)
      nfct_set_attr_u8(c, ATTR_DCCP_STATE, s.state);
  }
  nfct_set_attr_u32(c, ATTR_TIMEOUT, s.timeout);
  // ctnetlink sets CONFIRMED on new entries before applying the requested status, and a
  // status without it reads as an attempt to clear it (EBUSY).
  nfct_set_attr_u32(c, ATTR_STATUS, (s.hasStatus ? s.status : 0) | IPS_CONFIRMED);
  if (s.hasMark) nfct_set_attr_u32(c, ATTR_MARK, s.mark);
  if (s.hasLabels) {
    std::unique_ptr<nfct_bitmask, BitmaskDeleter> b(nfct_bitmask_new(127));
    if (!b) throw SysError::fromErrno(ENOMEM, "", "build", "nfct_bitmask_new failed");
    for (unsigned bit = 0; bit < 128; bit++) {
      if (s.labels[bit / 8] & (1u << (bit % 8))) nfct_bitmask_set_bit(b.get(), bit);
    }
    nfct_set_attr(c, ATTR_CONNLABELS, b.release());  // ownership passes to ct
  }
  return ct;
}

}  // namespace

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
  return putHeader(buf, perCpu ? IPCTNL_MSG_CT_GET_STATS_CPU : IPCTNL_MSG_CT_GET_STATS, perCpu ? NLM_F_REQUEST | NLM_F_DUMP : NLM_F_REQUEST | NLM_F_ACK, seq,
                   AF_UNSPEC, NFNETLINK_V0);
}

size_t entryRequestSize(const Entry& e) {
  if (!e.origTupleAttr) return 0;
  // CTA_ID and CTA_TIMEOUT are both a u32.
  return MNL_ALIGN(sizeof(nlmsghdr)) + MNL_ALIGN(sizeof(nfgenmsg)) + MNL_ALIGN(e.origTupleAttr->nla_len) + MNL_ALIGN(MNL_ATTR_HDRLEN + 2) +
         MNL_ALIGN(MNL_ATTR_HDRLEN + 4);
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
  if (kind == EntryRequest::Delete)
    mnl_attr_put_u32(nlh, CTA_ID, htonl(e.id));
  else
    mnl_attr_put_u32(nlh, CTA_TIMEOUT, htonl(timeout));
  out.resize(at + nlh->nlmsg_len);
  return true;
}

nlmsghdr* buildSpecRequest(char* buf, SpecRequest kind, uint32_t seq, const EntrySpec& s) {
  const bool forCreate = kind == SpecRequest::Create;
  const uint16_t type = kind == SpecRequest::Get ? IPCTNL_MSG_CT_GET : kind == SpecRequest::Create ? IPCTNL_MSG_CT_NEW : IPCTNL_MSG_CT_DELETE;
  const uint16_t flags = forCreate ? NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK : NLM_F_REQUEST | NLM_F_ACK;
  nlmsghdr* nlh = putHeader(buf, type, flags, seq, s.family, NFNETLINK_V0);
  NfctPtr ct = toNfct(s, forCreate);
  if (nfct_nlmsg_build(nlh, ct.get()) < 0) throwErrno("nfct_nlmsg_build", "build", errno ? errno : EINVAL);
  // libnetfilter_conntrack 1.0.9 does not put CTA_ID into requests. With it the kernel
  // answers ENOENT when the tuple now belongs to another flow instead of deleting that one.
  if (s.hasId) mnl_attr_put_u32(nlh, CTA_ID, htonl(s.id));
  return nlh;
}

}  // namespace ctpurge

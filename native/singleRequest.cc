#include "singleRequest.h"

#include <arpa/inet.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace ctpurge {
namespace {

struct NfctDeleter {
  void operator()(nf_conntrack* ct) const { nfct_destroy(ct); }
};
using NfctPtr = std::unique_ptr<nf_conntrack, NfctDeleter>;

struct BitmaskDeleter {
  void operator()(nfct_bitmask* b) const { nfct_bitmask_destroy(b); }
};

// One direction's tuple (the original, or the reply): layer 3 and 4 protocols, addresses
// and, when given, ports.
void setTuple(nf_conntrack* ct, bool reply, const EntrySpec& s, const uint8_t* src, const uint8_t* dst, uint16_t sport,
              uint16_t dport) {
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
    if (s.protocol == IPPROTO_TCP) nfct_set_attr_u8(c, ATTR_TCP_STATE, s.state);
    else if (s.protocol == IPPROTO_SCTP) {
      // ctnetlink insists on both verification tags alongside an SCTP state (EINVAL otherwise).
      nfct_set_attr_u8(c, ATTR_SCTP_STATE, s.state);
      nfct_set_attr_u32(c, ATTR_SCTP_VTAG_ORIG, 0);
      nfct_set_attr_u32(c, ATTR_SCTP_VTAG_REPL, 0);
    }
    else if (s.protocol == IPPROTO_DCCP) nfct_set_attr_u8(c, ATTR_DCCP_STATE, s.state);
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

nlmsghdr* buildRequest(char* buf, uint16_t type, uint16_t flags, uint32_t seq, const EntrySpec& s, bool forCreate) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = static_cast<uint16_t>((NFNL_SUBSYS_CTNETLINK << 8) | type);
  nlh->nlmsg_flags = flags;
  nlh->nlmsg_seq = seq;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = s.family;
  nfg->version = NFNETLINK_V0;
  nfg->res_id = 0;
  NfctPtr ct = toNfct(s, forCreate);
  if (nfct_nlmsg_build(nlh, ct.get()) < 0) throwErrno("nfct_nlmsg_build", "build", errno ? errno : EINVAL);
  // libnetfilter_conntrack 1.0.9 does not put CTA_ID into requests. With it the kernel
  // answers ENOENT when the tuple now belongs to another flow instead of deleting that one.
  if (s.hasId) mnl_attr_put_u32(nlh, CTA_ID, htonl(s.id));
  return nlh;
}

}  // namespace

bool getEntry(NetlinkSocket& s, const EntrySpec& spec, Entry& e) {
  char buf[MNL_SOCKET_BUFFER_SIZE] = {};  // zeroed: no stack bytes reach the kernel in padding
  EntrySpec lookup = spec;
  lookup.hasId = false;  // the kernel's GET ignores the id; we compare it below
  nlmsghdr* nlh = buildRequest(buf, IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_ACK, s.nextSeq(), lookup, false);
  bool found = false;
  try {
    s.request(nlh, "get", [&](const nlmsghdr* m) {
      if (parseEntry(m, e)) found = true;
    });
  } catch (const SysError& err) {
    if (err.errnum == ENOENT) return false;
    throw;
  }
  e.origTupleAttr = nullptr;
  if (found && spec.hasId && e.id != spec.id) return false;
  return found;
}

void createEntry(NetlinkSocket& s, const EntrySpec& spec) {
  char buf[MNL_SOCKET_BUFFER_SIZE] = {};  // zeroed: no stack bytes reach the kernel in padding
  nlmsghdr* nlh = buildRequest(buf, IPCTNL_MSG_CT_NEW, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK,
                               s.nextSeq(), spec, true);
  s.request(nlh, "create", [](const nlmsghdr*) {});
}

bool deleteEntry(NetlinkSocket& s, const EntrySpec& spec) {
  char buf[MNL_SOCKET_BUFFER_SIZE] = {};  // zeroed: no stack bytes reach the kernel in padding
  nlmsghdr* nlh = buildRequest(buf, IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, s.nextSeq(), spec, false);
  try {
    s.request(nlh, "delete", [](const nlmsghdr*) {});
  } catch (const SysError& err) {
    if (err.errnum == ENOENT) return false;
    throw;
  }
  return true;
}

}  // namespace ctpurge

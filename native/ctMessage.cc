#include "ctMessage.h"

#include <arpa/inet.h>
#include <endian.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <netinet/in.h>

#include <cstring>
#include <string_view>

#include "attrWalk.h"

namespace ctpurge {
namespace {

uint16_t be16(const nlattr* a) { return ntohs(mnl_attr_get_u16(a)); }
uint32_t be32(const nlattr* a) { return ntohl(mnl_attr_get_u32(a)); }
uint64_t be64(const nlattr* a) { return be64toh(mnl_attr_get_u64(a)); }

void parseIp(const nlattr* nest, Tuple& t) {
  forEachNested(nest, [&](const nlattr* a) {
    switch (mnl_attr_get_type(a)) {
      case CTA_IP_V4_SRC:
        if (payloadAtLeast(a, 4)) std::memcpy(t.src, mnl_attr_get_payload(a), 4);
        break;
      case CTA_IP_V4_DST:
        if (payloadAtLeast(a, 4)) std::memcpy(t.dst, mnl_attr_get_payload(a), 4);
        break;
      case CTA_IP_V6_SRC:
        if (payloadAtLeast(a, 16)) std::memcpy(t.src, mnl_attr_get_payload(a), 16);
        break;
      case CTA_IP_V6_DST:
        if (payloadAtLeast(a, 16)) std::memcpy(t.dst, mnl_attr_get_payload(a), 16);
        break;
      default: break;
    }
  });
}

void parseProto(const nlattr* nest, Tuple& t, uint8_t& protocol) {
  forEachNested(nest, [&](const nlattr* a) {
    switch (mnl_attr_get_type(a)) {
      case CTA_PROTO_NUM:
        if (payloadAtLeast(a, 1)) protocol = mnl_attr_get_u8(a);
        break;
      case CTA_PROTO_SRC_PORT:
        if (payloadAtLeast(a, 2)) {
          t.sport = be16(a);
          t.hasPorts = true;
        }
        break;
      case CTA_PROTO_DST_PORT:
        if (payloadAtLeast(a, 2)) {
          t.dport = be16(a);
          t.hasPorts = true;
        }
        break;
      case CTA_PROTO_ICMP_ID:
      case CTA_PROTO_ICMPV6_ID:
        if (payloadAtLeast(a, 2)) {
          t.icmpId = be16(a);
          t.hasIcmp = true;
        }
        break;
      case CTA_PROTO_ICMP_TYPE:
      case CTA_PROTO_ICMPV6_TYPE:
        if (payloadAtLeast(a, 1)) {
          t.icmpType = mnl_attr_get_u8(a);
          t.hasIcmp = true;
        }
        break;
      case CTA_PROTO_ICMP_CODE:
      case CTA_PROTO_ICMPV6_CODE:
        if (payloadAtLeast(a, 1)) {
          t.icmpCode = mnl_attr_get_u8(a);
          t.hasIcmp = true;
        }
        break;
      default: break;
    }
  });
}

void parseTuple(const nlattr* nest, Tuple& t, uint8_t& protocol, uint16_t& zone) {
  forEachNested(nest, [&](const nlattr* a) {
    switch (mnl_attr_get_type(a)) {
      case CTA_TUPLE_IP: parseIp(a, t); break;
      case CTA_TUPLE_PROTO: parseProto(a, t, protocol); break;
      case CTA_TUPLE_ZONE:
        if (payloadAtLeast(a, 2)) zone = be16(a);
        break;
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
      case CTA_COUNTERS_PACKETS:
        if (payloadAtLeast(a, 8)) e.packets[dir] = be64(a);
        break;
      case CTA_COUNTERS_BYTES:
        if (payloadAtLeast(a, 8)) e.bytes[dir] = be64(a);
        break;
      case CTA_COUNTERS32_PACKETS:
        if (payloadAtLeast(a, 4)) e.packets[dir] = be32(a);
        break;
      case CTA_COUNTERS32_BYTES:
        if (payloadAtLeast(a, 4)) e.bytes[dir] = be32(a);
        break;
      default: break;
    }
  });
  e.hasCounters = true;
}

// The helpers that refresh their entries with a timeout of their own choosing: sip
// (sip_timeout), H.323's RAS (the registration's time to live), and the broadcast helpers.
bool helperSetsTimeout(const nlattr* nest) {
  bool sets = false;
  forEachNested(nest, [&](const nlattr* a) {
    if (mnl_attr_get_type(a) != CTA_HELP_NAME) return;
    const size_t n = strnlen(static_cast<const char*>(mnl_attr_get_payload(a)), mnl_attr_get_payload_len(a));
    const std::string_view name(static_cast<const char*>(mnl_attr_get_payload(a)), n);
    sets = name == "sip" || name == "RAS" || name == "netbios-ns" || name == "snmp";
  });
  return sets;
}

void parseTimestamp(const nlattr* nest, Entry& e) {
  forEachNested(nest, [&](const nlattr* a) {
    if (mnl_attr_get_type(a) == CTA_TIMESTAMP_START && payloadAtLeast(a, 8)) {
      e.startNs = be64(a);
      e.hasStart = e.startNs != 0;
    }
  });
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
      case CTA_TUPLE_ORIG:
        parseTuple(a, e.orig, e.protocol, e.origZone);
        e.origTupleAttr = a;
        break;
      case CTA_TUPLE_REPLY: {
        uint8_t p = 0;
        parseTuple(a, e.reply, p, e.replyZone);
        break;
      }
      case CTA_STATUS:
        if (payloadAtLeast(a, 4)) e.status = be32(a);
        break;
      case CTA_PROTOINFO: parseProtoinfo(a, e); break;
      case CTA_TIMEOUT:
        if (payloadAtLeast(a, 4)) {
          e.timeout = be32(a);
          e.hasTimeout = true;
        }
        break;
      case CTA_MARK:
        if (payloadAtLeast(a, 4)) e.mark = be32(a);
        break;
      case CTA_COUNTERS_ORIG: parseCounters(a, e, 0); break;
      case CTA_COUNTERS_REPLY: parseCounters(a, e, 1); break;
      case CTA_ID:
        if (payloadAtLeast(a, 4)) {
          e.id = be32(a);
          e.hasId = true;
        }
        break;
      case CTA_ZONE:
        if (payloadAtLeast(a, 2)) e.zone = be16(a);
        break;
      case CTA_TIMESTAMP: parseTimestamp(a, e); break;
      case CTA_HELP: e.helperTimeout = helperSetsTimeout(a); break;
      case CTA_LABELS: {
        size_t n = mnl_attr_get_payload_len(a);
        if (n > sizeof e.labels) n = sizeof e.labels;
        std::memcpy(e.labels, mnl_attr_get_payload(a), n);
        for (size_t i = 0; i < n; i++)
          if (e.labels[i]) e.hasLabels = true;
        break;
      }
      default: break;
    }
  });
  // Helpers run after the tracker; sip refreshes only its UDP entries (sip_help_tcp never
  // does), and the others are UDP helpers: elsewhere the tracker's timeout stands.
  if (e.protocol != IPPROTO_UDP) e.helperTimeout = false;
  return e.origTupleAttr != nullptr;
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

// Lines shaped like `conntrack -L` prints them (list -o conntrack, watch).
#include "entryText.h"

#include "names.h"
#include "textParts.h"

namespace ctpurge {
using names::protocolName;
using text::appendAddress;
using text::appendNumbers;
using text::appendStateName;
using text::num;

namespace {

void appendTupleText(std::string& out, uint8_t family, const Tuple& t) {
  out += "src=";
  appendAddress(out, family, t.src);
  out += " dst=";
  appendAddress(out, family, t.dst);
  if (t.hasIcmp) appendNumbers(out, {{" type=", t.icmpType}, {" code=", t.icmpCode}, {" id=", t.icmpId}});
  if (t.hasPorts) appendNumbers(out, {{" sport=", t.sport}, {" dport=", t.dport}});
}

// " packets=N bytes=N" of one direction (0 original, 1 reply), when accounting is on.
void appendCountersText(std::string& out, const Entry& e, int dir) {
  if (!e.hasCounters) return;
  out += " packets=";
  num(out, e.packets[dir]);
  out += " bytes=";
  num(out, e.bytes[dir]);
}

}  // namespace

void appendConntrackLine(std::string& out, const Entry& e, uint64_t nowNs) {
  const char* name = protocolName(e.protocol);
  std::string proto = name ? name : "unknown";
  if (proto.size() < 8) proto.append(8 - proto.size(), ' ');
  out += proto;
  out += ' ';
  num(out, static_cast<unsigned>(e.protocol));
  out += ' ';
  num(out, e.hasTimeout ? e.timeout : 0u);
  out += ' ';
  if (appendStateName(out, e.protocol, e.state)) out += ' ';
  appendTupleText(out, e.family, e.orig);
  if (e.origZone) appendNumbers(out, {{" zone-orig=", e.origZone}});
  appendCountersText(out, e, 0);
  if (!(e.status & 2u)) out += " [UNREPLIED]";
  out += ' ';
  appendTupleText(out, e.family, e.reply);
  if (e.replyZone) appendNumbers(out, {{" zone-reply=", e.replyZone}});
  appendCountersText(out, e, 1);
  if (e.status & 4u) out += " [ASSURED]";
  out += " mark=";
  num(out, e.mark);
  if (e.zone) {
    out += " zone=";
    num(out, e.zone);
  }
  if (e.hasStart) {
    // conntrack subtracts whole seconds.
    out += " delta-time=";
    num(out, static_cast<long long>(nowNs / 1000000000ull) - static_cast<long long>(e.startNs / 1000000000ull));
  }
  out += '\n';
}

}  // namespace ctpurge

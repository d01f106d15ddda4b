#include "textParts.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <utility>

#include "names.h"

namespace ctpurge::text {

using names::kDccp;
using names::kSctp;
using names::kTcp;

// The state's name (or number), unquoted; false when the protocol has no states.
bool appendStateName(std::string& out, uint8_t proto, uint8_t state) {
  const char* const* table = nullptr;
  size_t size = 0;
  if (proto == IPPROTO_TCP) {
    table = kTcp;
    size = std::size(kTcp);
  } else if (proto == IPPROTO_SCTP) {
    table = kSctp;
    size = std::size(kSctp);
  } else if (proto == IPPROTO_DCCP) {
    table = kDccp;
    size = std::size(kDccp);
  }
  if (!table || state == kNoState) return false;
  if (state < size)
    out += table[state];
  else
    num(out, state);
  return true;
}

void appendState(std::string& out, uint8_t proto, uint8_t state) {
  const size_t at = out.size();
  out += '"';
  if (appendStateName(out, proto, state)) {
    out += '"';
  } else {
    out.resize(at);
    out += "null";
  }
}

// RFC 5952 text, exactly like formatIpv6() in src/parse/address.ts (no embedded IPv4).
void appendAddress(std::string& out, uint8_t family, const uint8_t* a) {
  char buf[48];
  if (family == AF_INET) {
    for (int i = 0; i < 4; i++) {
      if (i) out += '.';
      num(out, static_cast<unsigned>(a[i]));
    }
    return;
  }
  unsigned g[8];
  for (int i = 0; i < 8; i++) g[i] = (static_cast<unsigned>(a[i * 2]) << 8) | a[i * 2 + 1];
  int bestStart = -1, bestLen = 0;
  for (int i = 0; i < 8;) {
    if (g[i] != 0) {
      i++;
      continue;
    }
    int j = i;
    while (j < 8 && g[j] == 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) bestStart = -1;
  for (int i = 0; i < 8; i++) {
    if (i == bestStart) {
      out += "::";
      i += bestLen - 1;
      continue;
    }
    if (i > 0 && i != bestStart + bestLen) out += ':';
    auto r = std::to_chars(buf, buf + sizeof buf, g[i], 16);
    out.append(buf, static_cast<size_t>(r.ptr - buf));
  }
}

// Each field's text (separator and name), then its number. The JSON and the `conntrack -L`
// tuple writers differ only in that text and the order.
void appendNumbers(std::string& out, std::initializer_list<std::pair<const char*, unsigned>> fields) {
  for (const auto& [text, value] : fields) {
    out += text;
    num(out, value);
  }
}

void appendTuple(std::string& out, uint8_t family, const Tuple& t) {
  out += "{\"src\":\"";
  appendAddress(out, family, t.src);
  out += "\",\"dst\":\"";
  appendAddress(out, family, t.dst);
  out += '"';
  if (t.hasPorts) appendNumbers(out, {{",\"sport\":", t.sport}, {",\"dport\":", t.dport}});
  if (t.hasIcmp) {
    appendNumbers(out, {{",\"icmp\":{\"type\":", t.icmpType}, {",\"code\":", t.icmpCode}, {",\"id\":", t.icmpId}});
    out += '}';
  }
  out += '}';
}

// Math.round(age * 1000) / 1000, printed the way JavaScript prints that number.
void appendAge(std::string& out, double age) {
  const long long milli = std::llround(age * 1000.0);
  num(out, milli / 1000);
  long long frac = milli % 1000;
  if (frac == 0) return;
  char buf[8];
  std::snprintf(buf, sizeof buf, ".%03lld", frac);
  std::string f(buf);
  while (f.back() == '0') f.pop_back();
  out += f;
}

}  // namespace ctpurge::text

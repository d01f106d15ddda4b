#include "jsConvert.h"

#include <algorithm>
#include <cstring>
#include <exception>

namespace ctpurge {

Napi::Value ownGet(const Napi::Object& o, const char* key) { return o.HasOwnProperty(key) ? o.Get(key) : o.Env().Undefined(); }

namespace {

uint32_t u32(const Napi::Object& o, const char* key, uint32_t dflt = 0) {
  Napi::Value v = ownGet(o, key);
  return v.IsNumber() ? v.As<Napi::Number>().Uint32Value() : dflt;
}

bool has(const Napi::Object& o, const char* key) {
  Napi::Value v = ownGet(o, key);
  return !v.IsUndefined() && !v.IsNull();
}

void bytes16(const Napi::Value& v, uint8_t* out) {
  if (!v.IsTypedArray()) throw Napi::TypeError::New(v.Env(), "ctpurge: address must be a Uint8Array(16)");
  auto a = v.As<Napi::Uint8Array>();
  if (a.ByteLength() != 16) throw Napi::TypeError::New(v.Env(), "ctpurge: address must be 16 bytes");
  std::memcpy(out, a.Data(), 16);
}

std::vector<Cidr> cidrs(const Napi::Object& o, const char* key) {
  std::vector<Cidr> out;
  Napi::Value v = ownGet(o, key);
  if (!v.IsArray()) return out;
  auto arr = v.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Object c = arr.Get(i).As<Napi::Object>();
    Cidr x;
    x.family = static_cast<uint8_t>(u32(c, "family"));
    x.prefix = static_cast<uint8_t>(u32(c, "prefix"));
    bytes16(ownGet(c, "addr"), x.addr);
    out.push_back(x);
  }
  return out;
}

// An IPv4 address of a kernel tuple filter (4 bytes), when present.
bool bytes4(const Napi::Object& o, const char* key, uint8_t* out) {
  Napi::Value v = ownGet(o, key);
  if (v.IsUndefined()) return false;
  if (!v.IsTypedArray() || v.As<Napi::Uint8Array>().ByteLength() != 4) {
    throw Napi::TypeError::New(o.Env(), "ctpurge: a kernel filter address must be a Uint8Array(4)");
  }
  std::memcpy(out, v.As<Napi::Uint8Array>().Data(), 4);
  return true;
}

Napi::Object objectField(const Napi::Object& o, const char* key) {
  Napi::Value v = ownGet(o, key);
  if (!v.IsObject()) throw Napi::TypeError::New(o.Env(), std::string("ctpurge: a lane needs its ") + key + " filter");
  return v.As<Napi::Object>();
}

bool zoneField(const Napi::Object& o, const char* key, uint16_t& zone) {
  if (!has(o, key)) return false;
  zone = static_cast<uint16_t>(u32(o, key));
  return true;
}

bool range(const Napi::Object& o, const char* key, PortRange& r) {
  Napi::Value v = ownGet(o, key);
  if (!v.IsArray()) return false;
  auto arr = v.As<Napi::Array>();
  r.lo = static_cast<uint16_t>(arr.Get(0u).As<Napi::Number>().Uint32Value());
  r.hi = static_cast<uint16_t>(arr.Get(1u).As<Napi::Number>().Uint32Value());
  return true;
}

}  // namespace

Filter filterFromJs(const Napi::Object& o) {
  Filter f;
  f.family = static_cast<uint8_t>(u32(o, "family"));
  f.protocol = has(o, "protocol") ? static_cast<int>(u32(o, "protocol")) : -1;
  f.hasStates = ownGet(o, "hasStates").ToBoolean();
  f.tcpStates = u32(o, "tcpStates");
  f.sctpStates = u32(o, "sctpStates");
  f.dccpStates = u32(o, "dccpStates");
  f.statusMask = u32(o, "statusMask");
  f.statusValue = u32(o, "statusValue") & f.statusMask;
  if (has(o, "mark")) {
    f.hasMark = true;
    f.mark = u32(o, "mark");
    f.markMask = u32(o, "markMask", 0xffffffffu);
  }
  f.hasZone = zoneField(o, "zone", f.zone);
  f.hasOrigZone = zoneField(o, "origZone", f.origZone);
  f.hasReplyZone = zoneField(o, "replyZone", f.replyZone);
  f.src = cidrs(o, "src");
  f.dst = cidrs(o, "dst");
  f.replySrc = cidrs(o, "replySrc");
  f.replyDst = cidrs(o, "replyDst");
  f.hasSport = range(o, "sport", f.sport);
  f.hasDport = range(o, "dport", f.dport);
  f.hasReplySport = range(o, "replySport", f.replySport);
  f.hasReplyDport = range(o, "replyDport", f.replyDport);
  if (has(o, "idleFor")) {
    f.hasIdleFor = true;
    f.idleFor = ownGet(o, "idleFor").As<Napi::Number>().DoubleValue();
  }
  if (has(o, "olderThan")) {
    f.hasOlderThan = true;
    f.olderThan = ownGet(o, "olderThan").As<Napi::Number>().DoubleValue();
  }
  for (auto [key, out] : {std::pair<const char*, int8_t*>{"srcNat", &f.srcNat}, {"dstNat", &f.dstNat}, {"anyNat", &f.anyNat}}) {
    if (has(o, key)) *out = ownGet(o, key).ToBoolean().Value() ? 1 : 0;
  }
  if (has(o, "labels")) {
    Napi::Value l = ownGet(o, "labels");
    if (!l.IsTypedArray() || l.As<Napi::Uint8Array>().ByteLength() != sizeof f.labels)
      throw Napi::TypeError::New(o.Env(), "ctpurge: labels must be a Uint8Array of 16 bytes");
    std::memcpy(f.labels, l.As<Napi::Uint8Array>().Data(), sizeof f.labels);
    f.hasLabels = true;
  }
  if (has(o, "ids")) {
    Napi::Value ids = ownGet(o, "ids");
    if (!ids.IsTypedArray() || ids.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
      throw Napi::TypeError::New(o.Env(), "ctpurge: ids must be a Uint32Array");
    auto arr = ids.As<Napi::Uint32Array>();
    f.ids.assign(arr.Data(), arr.Data() + arr.ElementLength());
    std::sort(f.ids.begin(), f.ids.end());
    f.hasIds = true;
  }
  Napi::Value ex = ownGet(o, "except");
  if (ex.IsArray()) {
    auto arr = ex.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value x = arr.Get(i);
      if (!x.IsObject()) throw Napi::TypeError::New(o.Env(), "ctpurge: an exclusion must be a filter object");
      Filter xf = filterFromJs(x.As<Napi::Object>());
      if (!xf.except.empty()) throw Napi::TypeError::New(o.Env(), "ctpurge: an exclusion has no exclusions of its own");
      f.except.push_back(std::move(xf));
    }
  }
  return f;
}

EntrySpec entrySpecFromJs(const Napi::Object& o) {
  EntrySpec s;
  s.family = static_cast<uint8_t>(u32(o, "family"));
  s.protocol = static_cast<uint8_t>(u32(o, "protocol"));
  bytes16(ownGet(o, "src"), s.src);
  bytes16(ownGet(o, "dst"), s.dst);
  if (has(o, "sport") || has(o, "dport")) {
    s.hasPorts = true;
    s.sport = static_cast<uint16_t>(u32(o, "sport"));
    s.dport = static_cast<uint16_t>(u32(o, "dport"));
  }
  if (has(o, "icmpType")) {
    s.hasIcmp = true;
    s.icmpType = static_cast<uint8_t>(u32(o, "icmpType"));
    s.icmpCode = static_cast<uint8_t>(u32(o, "icmpCode"));
    s.icmpId = static_cast<uint16_t>(u32(o, "icmpId"));
  }
  if (has(o, "replySrc")) {
    s.hasReply = true;
    bytes16(ownGet(o, "replySrc"), s.replySrc);
    bytes16(ownGet(o, "replyDst"), s.replyDst);
    s.replySport = static_cast<uint16_t>(u32(o, "replySport"));
    s.replyDport = static_cast<uint16_t>(u32(o, "replyDport"));
  }
  s.hasZone = zoneField(o, "zone", s.zone);
  s.hasOrigZone = zoneField(o, "origZone", s.origZone);
  s.hasReplyZone = zoneField(o, "replyZone", s.replyZone);
  if (has(o, "id")) {
    s.hasId = true;
    s.id = u32(o, "id");
  }
  if (has(o, "state")) {
    s.hasState = true;
    s.state = static_cast<uint8_t>(u32(o, "state"));
  }
  s.timeout = u32(o, "timeout");
  if (has(o, "status")) {
    s.hasStatus = true;
    s.status = u32(o, "status");
  }
  if (has(o, "mark")) {
    s.hasMark = true;
    s.mark = u32(o, "mark");
  }
  if (has(o, "labels")) {
    s.hasLabels = true;
    bytes16(ownGet(o, "labels"), s.labels);
  }
  return s;
}

KernelFilter kernelFilterFromJs(const Napi::Object& o) {
  KernelFilter d;
  d.family = static_cast<uint8_t>(u32(o, "family"));
  if (has(o, "mark")) {
    d.hasMark = true;
    d.markMask = u32(o, "markMask", 0xffffffffu);
    d.mark = u32(o, "mark");
  }
  if (has(o, "statusMask")) {
    d.hasStatus = true;
    d.statusMask = u32(o, "statusMask");
    d.status = u32(o, "status") & d.statusMask;
  }
  if (has(o, "zone")) {
    d.hasZone = true;
    d.zone = static_cast<uint16_t>(u32(o, "zone"));
  }
  TupleFilter& t = d.tuple;
  if (has(o, "protocol")) {
    t.hasProtocol = true;
    t.protocol = static_cast<uint8_t>(u32(o, "protocol"));
  }
  if (has(o, "sport")) {
    t.hasSport = true;
    t.sport = static_cast<uint16_t>(u32(o, "sport"));
  }
  if (has(o, "dport")) {
    t.hasDport = true;
    t.dport = static_cast<uint16_t>(u32(o, "dport"));
  }
  t.hasOrigSrc = bytes4(o, "src", t.origSrc);
  t.hasOrigDst = bytes4(o, "dst", t.origDst);
  t.hasReplySrc = bytes4(o, "replySrc", t.replySrc);
  t.hasReplyDst = bytes4(o, "replyDst", t.replyDst);
  return d;
}

Lane laneFromJs(const Napi::Object& o) {
  return Lane{kernelFilterFromJs(objectField(o, "kernel")), filterFromJs(objectField(o, "match")), ownGet(o, "readAhead").ToBoolean()};
}

std::vector<Lane> lanesFromJs(const Napi::Value& v) {
  std::vector<Lane> out;
  if (v.IsArray()) {
    auto arr = v.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value lane = arr.Get(i);
      if (!lane.IsObject()) throw Napi::TypeError::New(v.Env(), "ctpurge: a lane must be { kernel, match }");
      out.push_back(laneFromJs(lane.As<Napi::Object>()));
    }
  }
  if (out.empty()) throw Napi::TypeError::New(v.Env(), "ctpurge: expected a list of lanes ({ kernel, match })");
  return out;
}

Napi::Object timeoutsToJs(Napi::Env env, const PolicyTimeouts& t) {
  Napi::Object o = Napi::Object::New(env);
  static const char* const tcpNames[14] = {nullptr,     "syn_sent", "syn_recv", "established", "fin_wait", "close_wait",  "last_ack",
                                           "time_wait", "close",    nullptr,    nullptr,       nullptr,    "max_retrans", "unacknowledged"};
  Napi::Object tcp = Napi::Object::New(env);
  for (int i = 0; i < 14; i++) {
    if (tcpNames[i] && t.tcp[i]) tcp.Set(tcpNames[i], t.tcp[i]);
  }
  o.Set("tcp", tcp);
  Napi::Object udp = Napi::Object::New(env);
  udp.Set("unreplied", t.udp);
  udp.Set("stream", t.udpStream);
  o.Set("udp", udp);
  o.Set("icmp", t.icmp);
  o.Set("icmpv6", t.icmpv6);
  o.Set("generic", t.generic);
  o.Set("policies", static_cast<double>(t.policies.size()));
  return o;
}

Napi::ArrayBuffer toArrayBuffer(Napi::Env env, const std::vector<uint8_t>& bytes) {
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, bytes.size());
  if (!bytes.empty()) std::memcpy(ab.Data(), bytes.data(), bytes.size());
  return ab;
}

}  // namespace ctpurge

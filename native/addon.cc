// Module entry: registers the native surface declared in src/native.ts.
#include <napi.h>

#include <cmath>

#include "addonData.h"
#include "dumpCursor.h"
#include "entryRecord.h"
#include "entryText.h"
#include "eventCursor.h"
#include "fileLock.h"
#include "handle.h"
#include "jsConvert.h"
#include "names.h"
#include "policyTimeouts.h"
#include "textFormat.h"

namespace ctpurge {
namespace {

// Policy timeouts from a unit test's object ({ tcp: [...], sctp: [...], dccp: [...], udp, ...,
// policies: [ same shape ] }); missing fields are 0 (not available).
PolicyTimeouts timeoutsFromJs(Napi::Object o) {
  PolicyTimeouts t;
  auto num = [&](const char* k) {
    Napi::Value v = ownGet(o, k);
    return v.IsNumber() ? v.As<Napi::Number>().Uint32Value() : 0u;
  };
  auto array = [&](const char* k, uint32_t* out, uint32_t size) {
    Napi::Value v = ownGet(o, k);
    if (!v.IsArray()) return;
    auto a = v.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length() && i < size; i++) {
      Napi::Value x = a.Get(i);
      out[i] = x.IsNumber() ? x.As<Napi::Number>().Uint32Value() : 0;
    }
  };
  array("tcp", t.tcp, 14);
  array("sctp", t.sctp, 10);
  array("dccp", t.dccp, 8);
  t.udp = num("udp");
  t.udpStream = num("udpStream");
  t.icmp = num("icmp");
  t.icmpv6 = num("icmpv6");
  t.generic = num("generic");
  t.gre = num("gre");
  t.greStream = num("greStream");
  Napi::Value policies = ownGet(o, "policies");
  if (policies.IsArray()) {
    auto a = policies.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value p = a.Get(i);
      if (p.IsObject()) t.policies.push_back(timeoutsFromJs(p.As<Napi::Object>()));
    }
  }
  return t;
}

// estimateAge(protocol, family, state, secondsLeft, timeouts) for unit tests: the same
// code the filters use, with policy timeouts given instead of read from /proc.
Napi::Value EstimateAge(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !info[4].IsObject()) throw Napi::TypeError::New(env, "estimateAge(p, f, s, left, timeouts)");
  const PolicyTimeouts t = timeoutsFromJs(info[4].As<Napi::Object>());
  Age age =
      estimateAgeFromTimeout(static_cast<uint8_t>(info[0].As<Napi::Number>().Uint32Value()), static_cast<uint8_t>(info[1].As<Napi::Number>().Uint32Value()),
                             static_cast<uint8_t>(info[2].As<Napi::Number>().Uint32Value()), info[3].As<Napi::Number>().Uint32Value(), t);
  if (age.source == AgeSource::Unknown) return env.Null();
  return Napi::Number::New(env, age.seconds);
}

// formatRecords(records: Uint8Array, format: 'ndjson' | 'conntrack' | 'table', nowMs) for unit
// tests: packed records through the same line writers as list, the audit log and watch, so
// the formats are held to their TypeScript reference without a kernel.
Napi::Value FormatRecords(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsTypedArray() || !info[2].IsNumber()) throw Napi::TypeError::New(env, "formatRecords(records, format, nowMs)");
  Napi::TypedArray records = info[0].As<Napi::TypedArray>();
  const TextFormat format = textFormatFromJs(info[1], TextFormat::Ndjson, {TextFormat::Ndjson, TextFormat::Conntrack, TextFormat::Table}, "formatRecords");
  const uint64_t nowNs = static_cast<uint64_t>(info[2].As<Napi::Number>().DoubleValue() * 1e6);
  const auto* bytes = static_cast<const uint8_t*>(records.ArrayBuffer().Data()) + records.ByteOffset();
  std::string out;
  TableRows rows;
  for (size_t off = 0; off + kRecordSize <= records.ByteLength(); off += kRecordSize) {
    Entry e;
    Ages ages;
    readRecord(bytes + off, e, ages);
    switch (format) {
      case TextFormat::Ndjson: appendNdjson(out, e, ages); break;
      case TextFormat::Conntrack: appendConntrackLine(out, e, nowNs); break;
      case TextFormat::Table: rows.add(e, ages); break;
      case TextFormat::Records: break;
    }
  }
  if (format == TextFormat::Table) {
    TableLayout table;
    table.write(rows, true, out);
  }
  return Napi::String::New(env, out);
}

template <size_t N>
Napi::Array stringArray(Napi::Env env, const char* const (&list)[N]) {
  Napi::Array a = Napi::Array::New(env, N);
  for (size_t i = 0; i < N; i++) a.Set(static_cast<uint32_t>(i), list[i]);
  return a;
}

// { protocols: { tcp: 6, ... }, tcp: [...], sctp, dccp (state names by number), status (IPS_*
// bit names in bit order), ageSources }: the tables the text formats print.
Napi::Object NameTables(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  Napi::Object protocols = Napi::Object::New(env);
  for (const names::Protocol& p : names::kProtocols) protocols.Set(p.name, static_cast<double>(p.number));
  o.Set("protocols", protocols);
  o.Set("tcp", stringArray(env, names::kTcp));
  o.Set("sctp", stringArray(env, names::kSctp));
  o.Set("dccp", stringArray(env, names::kDccp));
  o.Set("status", stringArray(env, names::kStatus));
  o.Set("ageSources", stringArray(env, names::kAgeSource));
  return o;
}

}  // namespace
}  // namespace ctpurge

static Napi::Object InitCtpurge(Napi::Env env, Napi::Object exports) {
  using namespace ctpurge;
  auto* data = new AddonData();
  data->handleCtor = Napi::Persistent(Handle::Define(env));
  data->cursorCtor = Napi::Persistent(DumpCursor::Define(env));
  data->eventCtor = Napi::Persistent(EventCursor::Define(env));
  env.SetInstanceData<AddonData>(data);  // deleted with the environment (worker exit too)
  // The flag outlives the environment (workers hold it), so the hook gets its own reference.
  auto* flag = new std::shared_ptr<std::atomic<bool>>(data->shuttingDown);
  napi_add_env_cleanup_hook(
      env,
      [](void* arg) {
        auto* f = static_cast<std::shared_ptr<std::atomic<bool>>*>(arg);
        (*f)->store(true);
        delete f;
      },
      flag);
  exports.Set("open", Napi::Function::New(env, Handle::Open, "open"));
  exports.Set("estimateAge", Napi::Function::New(env, EstimateAge, "estimateAge"));
  exports.Set("formatRecords", Napi::Function::New(env, FormatRecords, "formatRecords"));
  exports.Set("lockFile", Napi::Function::New(env, LockFile, "lockFile"));
  exports.Set("unlockFile", Napi::Function::New(env, UnlockFile, "unlockFile"));
  exports.Set("lockPidFile", Napi::Function::New(env, LockPidFile, "lockPidFile"));
  exports.Set("recordSize", Napi::Number::New(env, static_cast<double>(kRecordSize)));
  exports.Set("names", ctpurge::NameTables(env));
  return exports;
}

NODE_API_MODULE(ctpurge, InitCtpurge)

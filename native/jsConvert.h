// Conversions between the plain objects TypeScript passes in (already validated there)
// and the C++ structs the workers use. Workers copy everything they need before queueing
// and never touch a JS value on their thread.
#pragma once
#include <napi.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "filter.h"
#include "policyTimeouts.h"
#include "promiseWorker.h"
#include "textFormat.h"

namespace ctpurge {

// Sets number fields on o, one per (name, value).
inline void setNumbers(Napi::Object& o, std::initializer_list<std::pair<const char*, double>> fields) {
  for (const auto& [name, value] : fields) o.Set(name, value);
}

// Everything needed to name one entry (get/delete) or make one (create).
struct EntrySpec {
  uint8_t family = 0;
  uint8_t protocol = 0;
  uint8_t src[16] = {}, dst[16] = {};
  bool hasPorts = false;
  uint16_t sport = 0, dport = 0;
  bool hasIcmp = false;
  uint8_t icmpType = 0, icmpCode = 0;
  uint16_t icmpId = 0;
  bool hasReply = false;
  uint8_t replySrc[16] = {}, replyDst[16] = {};
  uint16_t replySport = 0, replyDport = 0;
  bool hasZone = false, hasOrigZone = false, hasReplyZone = false;
  uint16_t zone = 0, origZone = 0, replyZone = 0;  // as Entry's
  bool hasId = false;
  uint32_t id = 0;
  // create only
  bool hasState = false;
  uint8_t state = 0;
  uint32_t timeout = 0;
  bool hasStatus = false;
  uint32_t status = 0;
  bool hasMark = false;
  uint32_t mark = 0;
  bool hasLabels = false;
  uint8_t labels[16] = {};
};

// A field of an options object from JS: its own property only, never one inherited from a
// prototype (a polluted Object.prototype must not reach a filter or a request).
Napi::Value ownGet(const Napi::Object& o, const char* key);

// The two halves of a plan's lane (src/plan.ts: NativeFilter and KernelFilter).
Filter filterFromJs(const Napi::Object& o);
KernelFilter kernelFilterFromJs(const Napi::Object& o);
Lane laneFromJs(const Napi::Object& o);
// The lanes of a plan, as TypeScript made them (src/plan.ts): a non-empty array of { kernel, match }.
std::vector<Lane> lanesFromJs(const Napi::Value& v);
EntrySpec entrySpecFromJs(const Napi::Object& o);
Napi::Object timeoutsToJs(Napi::Env env, const PolicyTimeouts& t);
// Copies bytes into a new ArrayBuffer (transferable to other threads by the caller).
Napi::ArrayBuffer toArrayBuffer(Napi::Env env, const std::vector<uint8_t>& bytes);

}  // namespace ctpurge

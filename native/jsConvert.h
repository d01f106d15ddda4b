// Conversions between the plain objects TypeScript passes in (already validated there)
// and the C++ structs the workers use. Workers copy everything they need before queueing
// and never touch a JS value on their thread.
#pragma once
#include <napi.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "cancelFlag.h"
#include "ctRequest.h"
#include "filter.h"
#include "policyTimeouts.h"
#include "promiseWorker.h"
#include "textFormat.h"

namespace ctpurge {

// Sets number fields on o, one per (name, value).
inline void setNumbers(Napi::Object& o, std::initializer_list<std::pair<const char*, double>> fields) {
  for (const auto& [name, value] : fields) o.Set(name, value);
}

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

// A worker's cancel flag (cancelFlag.h) from an options field, made on the JS thread: the
// Int32Array's memory, kept alive by a reference while the worker holds it. Anything else
// (undefined, another type, an empty array) is no flag.
class CancelFlag {
 public:
  CancelFlag() = default;
  explicit CancelFlag(const Napi::Value& v) {
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) return;
    Napi::Int32Array a = v.As<Napi::Int32Array>();
    if (a.ElementLength() < 1) return;
    ref_ = Napi::Persistent(v.As<Napi::Object>());
    flag_ = a.Data();
  }
  // What the worker's threads read (cancelRequested), or null.
  const int32_t* get() const { return flag_; }
  bool requested() const { return cancelRequested(flag_); }

 private:
  Napi::ObjectReference ref_;
  const int32_t* flag_ = nullptr;
};

}  // namespace ctpurge

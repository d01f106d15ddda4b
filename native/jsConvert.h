// Conversions between the plain objects TypeScript passes in (already validated there)
// and the C++ structs the workers use. Workers copy everything they need before queueing
// and never touch a JS value on their thread.
#pragma once
#include <napi.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "filter.h"
#include "policyTimeouts.h"
#include "sysError.h"
#include "textFormat.h"

namespace ctpurge {

// Runs fn and turns what it throws into a SysError (returned) so a worker can report it on
// the JS thread; nullopt when fn succeeded.
std::optional<SysError> captureFailure(const std::function<void()>& fn, const char* operation);

// A promise-returning worker: Run() on the pool thread, Resolve() back on the JS thread.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env, const char* name)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  virtual void Run() = 0;
  virtual Napi::Value Resolve(Napi::Env env) = 0;
  // Runs on the JS thread before the promise settles, on success and on failure alike.
  virtual void Settle(bool ok) {}

  void Execute() final;
  void OnOK() final;
  void OnError(const Napi::Error& e) final;

 private:
  Napi::Promise::Deferred deferred_;
  SysError error_;
};

// Sets number fields on o, one per (name, value).
inline void setNumbers(Napi::Object& o, std::initializer_list<std::pair<const char*, double>> fields) {
  for (const auto& [name, value] : fields) o.Set(name, value);
}

// Makes a worker (a PromiseWorker, or any with Promise() and Queue()), queues it on the thread
// pool and returns its promise: the worker deletes itself once it has settled.
template <typename W, typename... Args>
Napi::Promise queueWorker(Napi::Env env, Args&&... args) {
  auto* w = new W(env, std::forward<Args>(args)...);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
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
EntrySpec entrySpecFromJs(const Napi::Object& o);
Napi::Object timeoutsToJs(Napi::Env env, const PolicyTimeouts& t);
// Copies bytes into a new ArrayBuffer (transferable to other threads by the caller).
Napi::ArrayBuffer toArrayBuffer(Napi::Env env, const std::vector<uint8_t>& bytes);

}  // namespace ctpurge

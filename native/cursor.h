// The pull protocol the dump and event cursors share. JS calls next(), which queues one
// Worker on the thread pool and resolves with what it read, or null once the cursor has
// ended; one next() at a time. close() ends the cursor: at once when no worker is in flight,
// else when that worker settles. Everything a worker touches lives in a State shared with
// the JS wrapper: when a worker_thread is terminated, the wrapper can be finalized while a
// worker is still running, and the worker must not be left pointing at it.
#pragma once
#include <napi.h>

#include <memory>
#include <utility>

#include "jsConvert.h"

namespace ctpurge {

// State needs: `bool busy`, `NamespacePtr ns`, `bool ended() const` (closed or finished),
// `void close()` (marks it closed) and `void release()` (frees the socket; no worker in flight).
template <typename Self, typename State, typename Worker>
class Cursor : public Napi::ObjectWrap<Self> {
 public:
  static Napi::Function Define(Napi::Env env, const char* name) {
    return Napi::ObjectWrap<Self>::DefineClass(
        env, name, {Napi::ObjectWrap<Self>::InstanceMethod("next", &Self::Next), Napi::ObjectWrap<Self>::InstanceMethod("close", &Self::Close)});
  }
  // The state of a cursor just made by its constructor (for NewInstance to fill in).
  static State& stateOf(const Napi::Object& o) { return *Self::Unwrap(o)->state_; }

  explicit Cursor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Self>(info) {}

  Napi::Value Next(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    State& s = *state_;
    if (s.busy) throw Napi::Error::New(env, "ctpurge: next() called while the previous next() is still reading");
    if (s.ended() || !s.ns) {
      auto d = Napi::Promise::Deferred::New(env);
      d.Resolve(env.Null());
      return d.Promise();
    }
    s.busy = true;
    return queueWorker<Worker>(env, state_);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    State& s = *state_;
    s.close();
    if (!s.busy) s.release();
    return info.Env().Undefined();
  }

 protected:
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace ctpurge

// The addon's workers: a promise settled on the JS thread with a result or a SysError, and
// the one way they are started (queueWorker).
#pragma once
#include <napi.h>

#include <functional>
#include <optional>
#include <utility>

#include "sysError.h"

namespace ctpurge {

// Runs fn and turns what it throws into a SysError (returned) so a worker can report it on
// the JS thread; nullopt when fn succeeded.
std::optional<SysError> captureFailure(const std::function<void()>& fn, const char* operation);

// A promise-returning worker: Run() on the pool thread, Resolve() back on the JS thread.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env, const char* name) : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}
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

// Makes a worker (a PromiseWorker, or any with Promise() and Queue()), queues it on the thread
// pool and returns its promise: the worker deletes itself once it has settled.
template <typename W, typename... Args>
Napi::Promise queueWorker(Napi::Env env, Args&&... args) {
  auto* w = new W(env, std::forward<Args>(args)...);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace ctpurge

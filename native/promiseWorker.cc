#include "promiseWorker.h"

#include <exception>
#include <new>

namespace ctpurge {

std::optional<SysError> captureFailure(const std::function<void()>& fn, const char* operation) {
  try {
    fn();
    return std::nullopt;
  } catch (const SysError& e) { return e; } catch (const std::bad_alloc&) {
    return SysError::fromErrno(ENOMEM, "", operation, "out of memory");
  } catch (const std::exception& e) {
    SysError err;
    err.operation = operation;
    err.message = e.what();
    return err;
  }
}

void PromiseWorker::Execute() {
  if (auto failure = captureFailure([this] { Run(); }, "")) {
    error_ = *failure;
    SetError(error_.message.empty() ? "ctpurge native error" : error_.message);
  }
}

// While an environment is torn down (a worker_thread terminated with work in flight),
// every N-API call may fail; with C++ exceptions on, that would escape into libuv and
// terminate the process. Nobody is left to receive the result then, so it is dropped.
void PromiseWorker::OnOK() {
  Settle(true);
  try {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    try {
      deferred_.Resolve(Resolve(env));
    } catch (const Napi::Error& e) { deferred_.Reject(e.Value()); }
  } catch (...) {}
}

void PromiseWorker::OnError(const Napi::Error&) {
  Settle(false);
  try {
    Napi::HandleScope scope(Env());
    deferred_.Reject(toJsError(Env(), error_).Value());
  } catch (...) {}
}

}  // namespace ctpurge

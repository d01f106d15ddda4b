// A dump read chunk by chunk from JS: each next() runs on a worker thread and resolves
// with one ArrayBuffer of packed entry records (or NDJSON text), or null at the end. The
// kernel only produces more of the dump when we read, so a paused consumer holds memory
// bounded.
#pragma once
#include <napi.h>

#include <memory>
#include <vector>

#include "dumpReader.h"
#include "filter.h"
#include "handle.h"

namespace ctpurge {

// Everything a chunk worker touches lives here, shared between the JS wrapper and the
// worker: when a worker_thread is terminated, the wrapper can be finalized while a worker
// is still running, and the worker must not be left pointing at it.
struct DumpState {
  enum class Format { Records, Ndjson };
  NamespacePtr ns;
  Lane lane;
  uint32_t chunk = 4096;
  Format format = Format::Records;
  PolicyTimeouts timeouts;
  std::unique_ptr<DumpReader> reader;
  bool busy = false;
  bool closed = false;
  bool finished = false;
};

class DumpCursor : public Napi::ObjectWrap<DumpCursor> {
 public:
  using Format = DumpState::Format;
  static Napi::Function Define(Napi::Env env);
  static Napi::Object NewInstance(Napi::Env env, NamespacePtr ns, Lane lane, uint32_t chunk, Format format);
  explicit DumpCursor(const Napi::CallbackInfo& info);

 private:
  Napi::Value Next(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  std::shared_ptr<DumpState> state_ = std::make_shared<DumpState>();
};

}  // namespace ctpurge

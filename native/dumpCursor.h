// A dump read chunk by chunk from JS: each next() runs on a worker thread and resolves
// with one ArrayBuffer of packed entry records (or null at the end). The kernel only
// produces more of the dump when we read, so a paused consumer holds memory bounded.
#pragma once
#include <napi.h>

#include <memory>
#include <vector>

#include "dumpReader.h"
#include "filter.h"
#include "handle.h"

namespace ctpurge {

class DumpCursor : public Napi::ObjectWrap<DumpCursor> {
 public:
  static Napi::Function Define(Napi::Env env);
  enum class Format { Records, Ndjson };
  static Napi::Object NewInstance(Napi::Env env, NamespacePtr ns, Filter filter, uint32_t chunk, Format format);
  explicit DumpCursor(const Napi::CallbackInfo& info);

 private:
  friend class NextChunkWorker;
  Napi::Value Next(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Scanned(const Napi::CallbackInfo& info);

  NamespacePtr ns_;
  Filter filter_;
  uint32_t chunk_ = 4096;
  Format format_ = Format::Records;
  PolicyTimeouts timeouts_;
  std::unique_ptr<DumpReader> reader_;
  double scanned_ = 0;
  bool busy_ = false;
  bool closed_ = false;
  bool finished_ = false;
};

}  // namespace ctpurge

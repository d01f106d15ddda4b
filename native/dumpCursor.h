// A dump read chunk by chunk from JS: each next() runs on a worker thread and resolves
// with one ArrayBuffer of packed entry records (or NDJSON text), or null at the end. The
// kernel only produces more of the dump when we read, so a paused consumer holds memory
// bounded.
#pragma once
#include <napi.h>

#include <memory>
#include <vector>

#include "cursor.h"
#include "dumpReader.h"
#include "filter.h"
#include "handle.h"
#include "textFormat.h"

namespace ctpurge {

// What a chunk worker touches, shared with the JS wrapper (see cursor.h).
struct DumpState {
  NamespacePtr ns;
  Lane lane;
  uint32_t chunk = 4096;
  TextFormat format = TextFormat::Records;  // or Ndjson
  PolicyTimeouts timeouts;
  std::unique_ptr<DumpReader> reader;
  bool busy = false;
  bool closed = false;
  bool finished = false;

  bool ended() const { return finished || closed; }
  void close() { closed = true; }
  // On the JS thread: the reader is discarded without waiting for its thread (DumpReader::discard).
  void release() {
    DumpReader::discard(std::move(reader));
    finished = true;
  }
  ~DumpState() { DumpReader::discard(std::move(reader)); }
};

class NextChunkWorker;

class DumpCursor : public Cursor<DumpCursor, DumpState, NextChunkWorker> {
 public:
  using Cursor::Cursor;
  // Defined next to the worker, which next() needs complete.
  static Napi::Function Define(Napi::Env env);
  static Napi::Object NewInstance(Napi::Env env, NamespacePtr ns, Lane lane, uint32_t chunk, TextFormat format);
};

}  // namespace ctpurge

// Conntrack events (ctnetlink multicast groups) read batch by batch from JS, like the dump
// cursor. A worker waits for events with poll() in short slices, so close() ends it.
#pragma once
#include <napi.h>

#include <atomic>
#include <memory>
#include <optional>
#include <vector>

#include "cursor.h"
#include "filter.h"
#include "handle.h"
#include "netlinkSocket.h"
#include "textFormat.h"

namespace ctpurge {

enum EventType : uint8_t { kEventNew = 1, kEventUpdate = 2, kEventDestroy = 3 };

// What an events worker touches, shared with the JS wrapper (see cursor.h).
struct EventState {
  NamespacePtr ns;
  // Records (the event type in byte 23), or the lines `ctpurge watch` prints: NDJSON
  // ({"type":"new","entry":{...}}) or `conntrack -E`-like ([NEW] and a `conntrack -L` line).
  TextFormat format = TextFormat::Records;
  // Lines start with when the event was read: "time" in NDJSON, [sec.usec] as conntrack -E -o timestamp.
  bool timestamps = false;
  Filter filter;
  uint32_t groups = 7;  // bit 0 new, bit 1 update, bit 2 destroy
  int receiveBuffer = 0;
  PolicyTimeouts timeouts;
  std::optional<NetlinkSocket> sock;
  std::atomic<bool> closed{false};
  std::shared_ptr<std::atomic<bool>> shuttingDown;  // the environment's (see AddonData)
  std::vector<char> buf;                            // receive buffer, kept across next() calls
  bool busy = false;

  bool stopping() const { return closed.load() || (shuttingDown && shuttingDown->load()); }
  bool ended() const { return closed.load(); }
  // A worker waiting in poll() sees this within one slice and resolves with null.
  void close() { closed.store(true); }
  void release() { sock.reset(); }
};

class NextEventsWorker;

class EventCursor : public Cursor<EventCursor, EventState, NextEventsWorker> {
 public:
  using Cursor::Cursor;
  // Defined next to the worker, which next() needs complete.
  static Napi::Function Define(Napi::Env env);
  static Napi::Object NewInstance(Napi::Env env, NamespacePtr ns, Filter filter, uint32_t groups, int receiveBuffer, TextFormat format, bool timestamps);
  // A worker still polling stops at its next slice instead of waiting for events forever.
  ~EventCursor() override { state_->closed.store(true); }
};

}  // namespace ctpurge

// Conntrack events (ctnetlink multicast groups) read batch by batch from JS, like the dump
// cursor. A worker waits for events with poll() in short slices, so close() ends it.
#pragma once
#include <napi.h>

#include <atomic>
#include <memory>
#include <optional>
#include <vector>

#include "filter.h"
#include "handle.h"
#include "netlinkSocket.h"

namespace ctpurge {

enum EventType : uint8_t { kEventNew = 1, kEventUpdate = 2, kEventDestroy = 3 };

// Shared by the JS wrapper and its worker (see DumpState for why).
struct EventState {
  NamespacePtr ns;
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
};

class EventCursor : public Napi::ObjectWrap<EventCursor> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object NewInstance(Napi::Env env, NamespacePtr ns, Filter filter, uint32_t groups, int receiveBuffer);
  explicit EventCursor(const Napi::CallbackInfo& info);
  ~EventCursor() override;

 private:
  Napi::Value Next(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  std::shared_ptr<EventState> state_ = std::make_shared<EventState>();
};

}  // namespace ctpurge

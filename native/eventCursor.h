// Conntrack events (ctnetlink multicast groups) read batch by batch from JS, like the dump
// cursor. A worker waits for events with poll() in short slices, so close() ends it.
#pragma once
#include <napi.h>

#include <atomic>
#include <memory>
#include <optional>

#include "filter.h"
#include "handle.h"
#include "netlinkSocket.h"

namespace ctpurge {

enum EventType : uint8_t { kEventNew = 1, kEventUpdate = 2, kEventDestroy = 3 };

class EventCursor : public Napi::ObjectWrap<EventCursor> {
 public:
  static Napi::Function Define(Napi::Env env);
  // groups: bit 0 new, bit 1 update, bit 2 destroy.
  static Napi::Object NewInstance(Napi::Env env, NamespacePtr ns, Filter filter, uint32_t groups, int receiveBuffer);
  explicit EventCursor(const Napi::CallbackInfo& info);

 private:
  friend class NextEventsWorker;
  Napi::Value Next(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  NamespacePtr ns_;
  Filter filter_;
  uint32_t groups_ = 7;
  int receiveBuffer_ = 0;
  PolicyTimeouts timeouts_;
  std::optional<NetlinkSocket> sock_;
  std::shared_ptr<std::atomic<bool>> closed_ = std::make_shared<std::atomic<bool>>(false);
  bool busy_ = false;
};

}  // namespace ctpurge

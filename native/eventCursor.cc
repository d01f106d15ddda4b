#include "eventCursor.h"

#include <poll.h>
#include <sys/socket.h>

#include <vector>

#include "addonData.h"
#include "entryRecord.h"
#include "jsConvert.h"

namespace ctpurge {

namespace {
constexpr size_t kMaxEventsPerChunk = 4096;
constexpr int kPollSliceMs = 200;
}  // namespace

class NextEventsWorker : public PromiseWorker {
 public:
  NextEventsWorker(Napi::Env env, EventCursor* c, Napi::Object self)
      : PromiseWorker(env, "ctpurge:events"), cursor_(c), self_(Napi::Persistent(self)), closed_(c->closed_) {}

 protected:
  void Run() override {
    EventCursor& c = *cursor_;
    if (!c.sock_) {
      inNetns(c.ns_->fd.get(), [&] { c.timeouts_ = PolicyTimeouts::readFromProc(); });
      c.sock_.emplace(NetlinkSocket::open(c.ns_->fd.get(), "events"));
      // Events arrive whether we read or not: a large buffer absorbs bursts, and what
      // still overflows is reported as lost, never dropped silently.
      if (c.receiveBuffer_ > 0) c.sock_->setReceiveBuffer(c.receiveBuffer_);
      for (int group = 1; group <= 3; group++) {
        if (c.groups_ & (1u << (group - 1))) c.sock_->joinGroup(group);
      }
    }
    std::vector<char> buf(256 * 1024);
    const int fd = c.sock_->fd();
    while (!closed_->load()) {
      pollfd p{fd, POLLIN, 0};
      const int r = ::poll(&p, 1, kPollSliceMs);
      if (r < 0 && errno != EINTR) throwErrno("poll", "events", errno);
      if (r <= 0) continue;
      // Drain what is queued, then hand it to JS.
      for (;;) {
        ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
        if (n < 0) {
          if (errno == EINTR) continue;
          if (errno == ENOBUFS) {
            lost_++;
            continue;
          }
          if (errno == EAGAIN || errno == EWOULDBLOCK) break;
          throwErrno("recvmsg", "events", errno);
        }
        parse(buf.data(), static_cast<int>(n));
        if (count_ >= kMaxEventsPerChunk) break;
      }
      if (count_ > 0 || lost_ > 0) return;
    }
    ended_ = true;
  }

  void parse(const char* data, int len) {
    EventCursor& c = *cursor_;
    const uint64_t now = realtimeNowNs();
    Entry e;
    for (const nlmsghdr* m = reinterpret_cast<const nlmsghdr*>(data); mnl_nlmsg_ok(m, len); m = mnl_nlmsg_next(m, &len)) {
      if (!parseEntry(m, e)) continue;
      const Age age = estimateAge(e, c.timeouts_, now);
      if (!c.filter_.matches(e, age)) continue;
      uint8_t type = kEventUpdate;
      if ((m->nlmsg_type & 0xff) == IPCTNL_MSG_CT_DELETE) type = kEventDestroy;
      else if (m->nlmsg_flags & (NLM_F_CREATE | NLM_F_EXCL)) type = kEventNew;
      appendRecord(records_, e, age);
      records_[records_.size() - kRecordSize + 23] = type;  // byte 23: the event type
      count_++;
    }
  }

  Napi::Value Resolve(Napi::Env env) override {
    if (ended_) return env.Null();
    Napi::Object o = Napi::Object::New(env);
    o.Set("records", toArrayBuffer(env, records_));
    o.Set("lost", Napi::Number::New(env, static_cast<double>(lost_)));
    return o;
  }

  void Settle(bool ok) override {
    cursor_->busy_ = false;
    if (!ok || ended_) cursor_->sock_.reset();
  }

 private:
  EventCursor* cursor_;
  Napi::ObjectReference self_;
  std::shared_ptr<std::atomic<bool>> closed_;
  std::vector<uint8_t> records_;
  size_t count_ = 0;
  uint64_t lost_ = 0;
  bool ended_ = false;
};

Napi::Function EventCursor::Define(Napi::Env env) {
  return DefineClass(env, "EventCursor",
                     {InstanceMethod<&EventCursor::Next>("next"), InstanceMethod<&EventCursor::Close>("close")});
}

Napi::Object EventCursor::NewInstance(Napi::Env env, NamespacePtr ns, Filter filter, uint32_t groups, int receiveBuffer) {
  Napi::Object o = env.GetInstanceData<AddonData>()->eventCtor.New({});
  EventCursor* c = EventCursor::Unwrap(o);
  c->ns_ = std::move(ns);
  c->filter_ = std::move(filter);
  c->groups_ = groups;
  c->receiveBuffer_ = receiveBuffer;
  return o;
}

EventCursor::EventCursor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EventCursor>(info) {}

Napi::Value EventCursor::Next(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (busy_) throw Napi::Error::New(env, "ctpurge: next() called while events are still being read");
  if (closed_->load() || !ns_) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Resolve(env.Null());
    return d.Promise();
  }
  busy_ = true;
  auto* w = new NextEventsWorker(env, this, info.This().As<Napi::Object>());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value EventCursor::Close(const Napi::CallbackInfo& info) {
  // A worker waiting in poll() sees this within one slice and resolves with null.
  closed_->store(true);
  if (!busy_) sock_.reset();
  return info.Env().Undefined();
}

}  // namespace ctpurge

#include "eventCursor.h"

#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "addonData.h"
#include "entryRecord.h"
#include "entryText.h"
#include "jsConvert.h"

namespace ctpurge {

namespace {
constexpr size_t kMaxEventsPerChunk = 4096;
constexpr int kPollSliceMs = 200;
// Once events flow, more are gathered for this long before the batch goes to JS: each batch
// costs a worker's round trip through the thread pool and the event loop, which at 20,000
// events a second (a SYN flood's NEW and DESTROY), one or two events a batch, took a third of
// a CPU (measured with ctpurge top); with the window, about 50 batches a second.
constexpr int kGatherMs = 20;
constexpr const char* kTypeNames[] = {"", "new", "update", "destroy"};
constexpr const char* kTypeTags[] = {"", "[NEW] ", "[UPDATE] ", "[DESTROY] "};
}  // namespace

class NextEventsWorker : public PromiseWorker {
 public:
  NextEventsWorker(Napi::Env env, std::shared_ptr<EventState> state) : PromiseWorker(env, "ctpurge:events"), state_(std::move(state)) {}

 protected:
  void Run() override {
    EventState& c = *state_;
    if (!c.sock) {
      inNetns(c.ns->fd.get(), [&] { c.timeouts = PolicyTimeouts::readFromProc(); });
      c.sock.emplace(NetlinkSocket::open(c.ns->fd.get(), "events"));
      // Events arrive whether we read or not: a large buffer absorbs bursts, and what
      // still overflows is reported as lost, never dropped silently.
      if (c.receiveBuffer > 0) c.sock->setReceiveBuffer(c.receiveBuffer);
      for (int group = 1; group <= 3; group++) {
        if (c.groups & (1u << (group - 1))) c.sock->joinGroup(group);
      }
    }
    std::vector<char>& buf = c.buf;
    if (buf.empty()) buf.resize(256 * 1024);
    const int fd = c.sock->fd();
    // One poll slice at most, then back to JS even with nothing to report: a thread-pool
    // thread is never held longer than that, because process.exit() joins the pool before it
    // exits and a worker's terminate() waits for its requests (neither would ever return).
    if (!c.stopping()) {
      pollfd p{fd, POLLIN, 0};
      const int r = ::poll(&p, 1, kPollSliceMs);
      if (r < 0 && errno != EINTR) throwErrno("poll", "events", errno);
      if (r <= 0) return;  // idle: an empty batch
      // Drain what is queued, and what comes within kGatherMs, then hand it to JS.
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(kGatherMs);
      for (;;) {
        ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
        if (n < 0) {
          if (errno == EINTR) continue;
          if (errno == ENOBUFS) {
            lost_++;
            continue;
          }
          if (errno != EAGAIN && errno != EWOULDBLOCK) throwErrno("recvmsg", "events", errno);
          // Drained: wait out the window once (the receive buffer holds what comes meanwhile),
          // then drain again; not a wake-up per event.
          const auto now = std::chrono::steady_clock::now();
          if (now >= until || c.stopping()) break;
          std::this_thread::sleep_until(until);
          continue;
        }
        parse(buf.data(), static_cast<int>(n));
        if (count_ >= kMaxEventsPerChunk) break;
      }
      return;
    }
    ended_ = true;
  }

  void parse(const char* data, int len) {
    EventState& c = *state_;
    const uint64_t now = realtimeNowNs();
    Entry e;
    for (const nlmsghdr* m = reinterpret_cast<const nlmsghdr*>(data); mnl_nlmsg_ok(m, len); m = mnl_nlmsg_next(m, &len)) {
      if (!parseEntry(m, e)) continue;
      const Ages ages = estimateAges(e, c.timeouts, now);
      if (!c.filter.matches(e, ages)) continue;
      uint8_t type = kEventUpdate;
      if ((m->nlmsg_type & 0xff) == IPCTNL_MSG_CT_DELETE)
        type = kEventDestroy;
      else if (m->nlmsg_flags & (NLM_F_CREATE | NLM_F_EXCL))
        type = kEventNew;
      switch (c.format) {
        case TextFormat::Records:
          appendRecord(records_, e, ages);
          records_[records_.size() - kRecordSize + 23] = type;  // byte 23: the event type
          break;
        case TextFormat::Ndjson:
          text_ += "{\"type\":\"";
          text_ += kTypeNames[type];
          if (c.timestamps) {
            text_ += "\",\"time\":";
            appendIsoTime(text_, now);
            text_ += ",\"entry\":";
          } else {
            text_ += "\",\"entry\":";
          }
          appendNdjson(text_, e, ages);
          text_.back() = '}';  // the entry's line ends the event's object
          text_ += '\n';
          break;
        case TextFormat::Conntrack:
          if (c.timestamps) {
            char stamp[40];
            std::snprintf(stamp, sizeof stamp, "[%llu.%06llu]\t", static_cast<unsigned long long>(now / 1000000000ull),
                          static_cast<unsigned long long>(now % 1000000000ull / 1000ull));
            text_ += stamp;
          }
          text_ += kTypeTags[type];
          appendConntrackLine(text_, e, now);
          break;
        case TextFormat::Table: break;  // not an event format: refused where the cursor is made
      }
      count_++;
    }
  }

  Napi::Value Resolve(Napi::Env env) override {
    if (ended_) return env.Null();
    Napi::Object o = Napi::Object::New(env);
    if (state_->format == TextFormat::Records)
      o.Set("records", toArrayBuffer(env, records_));
    else
      o.Set("text", Napi::Buffer<char>::Copy(env, text_.data(), text_.size()));
    o.Set("lost", Napi::Number::New(env, static_cast<double>(lost_)));
    return o;
  }

  void Settle(bool ok) override {
    state_->busy = false;
    if (!ok || ended_ || state_->closed.load()) state_->sock.reset();
  }

 private:
  std::shared_ptr<EventState> state_;
  std::vector<uint8_t> records_;
  std::string text_;
  size_t count_ = 0;
  uint64_t lost_ = 0;
  bool ended_ = false;
};

Napi::Function EventCursor::Define(Napi::Env env) { return Cursor::Define(env, "EventCursor"); }

Napi::Object EventCursor::NewInstance(Napi::Env env, NamespacePtr ns, Filter filter, uint32_t groups, int receiveBuffer, TextFormat format, bool timestamps) {
  AddonData* data = env.GetInstanceData<AddonData>();
  Napi::Object o = data->eventCtor.New({});
  EventState& s = stateOf(o);
  s.shuttingDown = data->shuttingDown;
  s.ns = std::move(ns);
  s.filter = std::move(filter);
  s.groups = groups;
  s.receiveBuffer = receiveBuffer;
  s.format = format;
  s.timestamps = timestamps;
  return o;
}

}  // namespace ctpurge

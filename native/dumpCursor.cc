#include "dumpCursor.h"

#include "addonData.h"
#include "entryRecord.h"
#include "jsConvert.h"
#include "ndjson.h"

namespace ctpurge {
namespace {

class NextChunkWorker : public PromiseWorker {
 public:
  NextChunkWorker(Napi::Env env, std::shared_ptr<DumpState> state)
      : PromiseWorker(env, "ctpurge:dump"), state_(std::move(state)) {}

 protected:
  void Run() override {
    DumpState& c = *state_;
    if (!c.reader) {
      inNetns(c.ns->fd.get(), [&] { c.timeouts = PolicyTimeouts::readFromProc(); });
      c.reader = std::make_unique<DumpReader>(c.ns->fd.get(), c.lane.kernel, "dump");
    }
    const uint64_t now = realtimeNowNs();
    const bool ndjson = c.format == DumpState::Format::Ndjson;
    if (ndjson) text_.reserve((static_cast<size_t>(c.chunk) + 256) * 420);
    else records_.reserve((static_cast<size_t>(c.chunk) + 256) * kRecordSize);
    bool more = true;
    while (more && matched_ < c.chunk) {
      more = c.reader->next([&](const Entry& e) {
        const Ages ages = estimateAges(e, c.timeouts, now);
        if (!c.lane.match.matches(e, ages)) return;
        matched_++;
        if (ndjson) appendNdjson(text_, e, ages);
        else appendRecord(records_, e, ages);
      });
    }
    if (!more) finished_ = true;
  }

  Napi::Value Resolve(Napi::Env env) override {
    if (matched_ == 0) return env.Null();
    if (state_->format == DumpState::Format::Ndjson) return Napi::Buffer<char>::Copy(env, text_.data(), text_.size());
    return toArrayBuffer(env, records_);
  }

  void Settle(bool ok) override {
    DumpState& c = *state_;
    c.busy = false;
    // A failed read ends the cursor too: its socket is in an unknown state.
    if (!ok || finished_ || c.closed) {
      c.finished = true;
      c.reader.reset();
    }
  }

 private:
  std::shared_ptr<DumpState> state_;
  std::vector<uint8_t> records_;
  std::string text_;
  uint32_t matched_ = 0;
  bool finished_ = false;
};

}  // namespace

Napi::Function DumpCursor::Define(Napi::Env env) {
  return DefineClass(env, "DumpCursor",
                     {
                         InstanceMethod<&DumpCursor::Next>("next"),
                         InstanceMethod<&DumpCursor::Close>("close"),
                     });
}

Napi::Object DumpCursor::NewInstance(Napi::Env env, NamespacePtr ns, Lane lane, uint32_t chunk, Format format) {
  AddonData* data = env.GetInstanceData<AddonData>();
  Napi::Object o = data->cursorCtor.New({});
  DumpState& s = *DumpCursor::Unwrap(o)->state_;
  s.ns = std::move(ns);
  s.lane = std::move(lane);
  s.chunk = chunk == 0 ? 4096 : chunk;
  s.format = format;
  return o;
}

DumpCursor::DumpCursor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DumpCursor>(info) {}

Napi::Value DumpCursor::Next(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DumpState& s = *state_;
  if (s.busy) throw Napi::Error::New(env, "ctpurge: next() called while a chunk is still being read");
  if (s.finished || s.closed || !s.ns) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Resolve(env.Null());
    return d.Promise();
  }
  s.busy = true;
  auto* w = new NextChunkWorker(env, state_);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value DumpCursor::Close(const Napi::CallbackInfo& info) {
  DumpState& s = *state_;
  s.closed = true;
  if (!s.busy) {
    s.reader.reset();
    s.finished = true;
  }
  return info.Env().Undefined();
}

}  // namespace ctpurge

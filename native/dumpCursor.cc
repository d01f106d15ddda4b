#include "dumpCursor.h"

#include "addonData.h"
#include "entryRecord.h"
#include "ndjson.h"
#include "jsConvert.h"

namespace ctpurge {

class NextChunkWorker : public PromiseWorker {
 public:
  NextChunkWorker(Napi::Env env, DumpCursor* cursor, Napi::Object self)
      : PromiseWorker(env, "ctpurge:dump"), cursor_(cursor), self_(Napi::Persistent(self)) {}

 protected:
  void Run() override {
    DumpCursor& c = *cursor_;
    if (!c.reader_) {
      inNetns(c.ns_->fd.get(), [&] { c.timeouts_ = PolicyTimeouts::readFromProc(); });
      c.reader_ = std::make_unique<DumpReader>(c.ns_->fd.get(), c.filter_.dumpFilter(), "dump");
    }
    const uint64_t now = realtimeNowNs();
    const bool ndjson = c.format_ == DumpCursor::Format::Ndjson;
    if (ndjson) text_.reserve((static_cast<size_t>(c.chunk_) + 256) * 420);
    else records_.reserve((static_cast<size_t>(c.chunk_) + 256) * kRecordSize);
    bool more = true;
    while (more && matched_ < c.chunk_) {
      more = c.reader_->next([&](const Entry& e) {
        scanned_++;
        const Age age = estimateAge(e, c.timeouts_, now);
        if (!c.filter_.matches(e, age)) return;
        matched_++;
        if (ndjson) appendNdjson(text_, e, age);
        else appendRecord(records_, e, age);
      });
    }
    if (!more) finished_ = true;
  }

  Napi::Value Resolve(Napi::Env env) override {
    if (matched_ == 0) return env.Null();
    if (cursor_->format_ == DumpCursor::Format::Ndjson) return Napi::Buffer<char>::Copy(env, text_.data(), text_.size());
    return toArrayBuffer(env, records_);
  }

  void Settle(bool ok) override {
    DumpCursor& c = *cursor_;
    c.busy_ = false;
    c.scanned_ += scanned_;
    // A failed read ends the cursor too: its socket is in an unknown state.
    if (!ok || finished_ || c.closed_) {
      c.finished_ = true;
      c.reader_.reset();
    }
  }

 private:
  DumpCursor* cursor_;
  Napi::ObjectReference self_;  // keeps the cursor alive while its worker runs
  std::vector<uint8_t> records_;
  std::string text_;
  uint32_t matched_ = 0;
  double scanned_ = 0;
  bool finished_ = false;
};

Napi::Function DumpCursor::Define(Napi::Env env) {
  return DefineClass(env, "DumpCursor",
                     {
                         InstanceMethod<&DumpCursor::Next>("next"),
                         InstanceMethod<&DumpCursor::Close>("close"),
                         InstanceAccessor<&DumpCursor::Scanned>("scanned"),
                     });
}

Napi::Object DumpCursor::NewInstance(Napi::Env env, NamespacePtr ns, Filter filter, uint32_t chunk, Format format) {
  AddonData* data = env.GetInstanceData<AddonData>();
  Napi::Object o = data->cursorCtor.New({});
  DumpCursor* c = DumpCursor::Unwrap(o);
  c->ns_ = std::move(ns);
  c->filter_ = std::move(filter);
  c->chunk_ = chunk == 0 ? 4096 : chunk;
  c->format_ = format;
  return o;
}

DumpCursor::DumpCursor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DumpCursor>(info) {}

Napi::Value DumpCursor::Next(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (busy_) throw Napi::Error::New(env, "ctpurge: next() called while a chunk is still being read");
  if (finished_ || closed_ || !ns_) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Resolve(env.Null());
    return d.Promise();
  }
  busy_ = true;
  auto* w = new NextChunkWorker(env, this, info.This().As<Napi::Object>());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value DumpCursor::Close(const Napi::CallbackInfo& info) {
  closed_ = true;
  if (!busy_) {
    reader_.reset();
    finished_ = true;
  }
  return info.Env().Undefined();
}

Napi::Value DumpCursor::Scanned(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), scanned_); }

}  // namespace ctpurge

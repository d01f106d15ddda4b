#include "dumpCursor.h"

#include "addonData.h"
#include "entryRecord.h"
#include "entryText.h"
#include "jsConvert.h"

namespace ctpurge {

class NextChunkWorker : public PromiseWorker {
 public:
  NextChunkWorker(Napi::Env env, std::shared_ptr<DumpState> state) : PromiseWorker(env, "ctpurge:dump"), state_(std::move(state)) {}

 protected:
  void Run() override {
    DumpState& c = *state_;
    if (!c.reader) {
      inNetns(c.ns->fd.get(), [&] { c.timeouts = PolicyTimeouts::readFromProc(); });
      c.reader = std::make_unique<DumpReader>(c.ns->fd.get(), c.lane, "dump");
    }
    const uint64_t now = realtimeNowNs();
    const bool ndjson = c.format == TextFormat::Ndjson;
    if (ndjson)
      text_.reserve((static_cast<size_t>(c.chunk) + 256) * 420);
    else
      records_.reserve((static_cast<size_t>(c.chunk) + 256) * kRecordSize);
    bool more = true;
    while (more && matched_ < c.chunk) {
      more = c.reader->next([&](const Entry& e) {
        const Ages ages = estimateAges(e, c.timeouts, now);
        if (!c.lane.match.matches(e, ages)) return;
        matched_++;
        if (ndjson)
          appendNdjson(text_, e, ages);
        else
          appendRecord(records_, e, ages);
      });
    }
    if (!more) finished_ = true;
  }

  Napi::Value Resolve(Napi::Env env) override {
    if (matched_ == 0) return env.Null();
    if (state_->format == TextFormat::Ndjson) return Napi::Buffer<char>::Copy(env, text_.data(), text_.size());
    return toArrayBuffer(env, records_);
  }

  void Settle(bool ok) override {
    DumpState& c = *state_;
    c.busy = false;
    // A failed read ends the cursor too: its socket is in an unknown state.
    if (!ok || finished_ || c.closed) c.release();
  }

 private:
  std::shared_ptr<DumpState> state_;
  std::vector<uint8_t> records_;
  std::string text_;
  uint32_t matched_ = 0;
  bool finished_ = false;
};

Napi::Function DumpCursor::Define(Napi::Env env) { return Cursor::Define(env, "DumpCursor"); }

Napi::Object DumpCursor::NewInstance(Napi::Env env, NamespacePtr ns, Lane lane, uint32_t chunk, TextFormat format) {
  AddonData* data = env.GetInstanceData<AddonData>();
  Napi::Object o = data->cursorCtor.New({});
  DumpState& s = stateOf(o);
  s.ns = std::move(ns);
  s.lane = std::move(lane);
  s.chunk = chunk == 0 ? 4096 : chunk;
  s.format = format;
  return o;
}

}  // namespace ctpurge

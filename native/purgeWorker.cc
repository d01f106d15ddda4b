#include "purgeWorker.h"

#include <chrono>
#include <optional>
#include <vector>

#include "dumpReader.h"
#include "entryRecord.h"
#include "filter.h"
#include "jsConvert.h"

namespace ctpurge {
namespace {

struct PurgeOptions {
  bool dryRun = false;
  double limit = -1;  // < 0: no limit
  bool wantEntries = false;
  bool allowFlush = true;
  const int32_t* cancel = nullptr;
};

struct PurgeCounts {
  double scanned = 0, matched = 0, deleted = 0, vanished = 0, batches = 0;
  bool flushed = false, cancelled = false, limitReached = false;
  double lostReports = 0;
};

struct ProgressItem {
  PurgeCounts counts;
  std::vector<uint8_t> records;
};

using Clock = std::chrono::steady_clock;

// Each batch must fit the socket's send buffer (EMSGSIZE otherwise); 256 KiB holds
// about 2,500 deletes, which is plenty to amortise the syscall.
constexpr size_t kMaxBatchBytes = 256 * 1024;
// Error replies for a whole batch must fit the receive buffer, or the kernel drops them.
constexpr int kDeleteRcvBuf = 16 * 1024 * 1024;
constexpr int kDeleteSndBuf = 1024 * 1024;
constexpr size_t kRecordsPerReport = 2048;

class PurgeWorker : public Napi::AsyncProgressQueueWorker<ProgressItem> {
 public:
  PurgeWorker(Napi::Env env, NamespacePtr ns, Filter filter, PurgeOptions opts, Napi::Function onProgress,
              Napi::Value cancelArray)
      : Napi::AsyncProgressQueueWorker<ProgressItem>(env, "ctpurge:purge"),
        deferred_(Napi::Promise::Deferred::New(env)),
        ns_(std::move(ns)),
        filter_(std::move(filter)),
        opts_(opts) {
    if (!onProgress.IsEmpty()) onProgress_ = Napi::Persistent(onProgress);
    if (cancelArray.IsTypedArray()) cancelRef_ = Napi::Persistent(cancelArray.As<Napi::Object>());
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute(const ExecutionProgress& progress) override {
    try {
      run(progress);
    } catch (const SysError& e) {
      error_ = e;
      SetError(e.message.empty() ? "purge failed" : e.message);
    } catch (const std::bad_alloc&) {
      error_ = SysError::fromErrno(ENOMEM, "", "purge", "out of memory");
      SetError("out of memory");
    }
  }

  void OnProgress(const ProgressItem* items, size_t n) override {
    if (onProgress_.IsEmpty()) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    for (size_t i = 0; i < n; i++) {
      Napi::Value records = items[i].records.empty() ? env.Undefined() : Napi::Value(toArrayBuffer(env, items[i].records));
      try {
        onProgress_.Call({countsToJs(env, items[i].counts), records});
      } catch (const Napi::Error&) {
        // A throwing callback must not stop the purge half-way; JS reports it afterwards.
      }
    }
  }

  void OnOK() override {
    Napi::HandleScope scope(Env());
    deferred_.Resolve(countsToJs(Env(), counts_));
  }

  void OnError(const Napi::Error&) override {
    Napi::HandleScope scope(Env());
    Napi::Error e = toJsError(Env(), error_);
    // What was already deleted stays deleted: say how far the purge got.
    e.Value().Set("partial", countsToJs(Env(), counts_));
    deferred_.Reject(e.Value());
  }

 private:
  static Napi::Object countsToJs(Napi::Env env, const PurgeCounts& c) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("scanned", c.scanned);
    o.Set("matched", c.matched);
    o.Set("deleted", c.deleted);
    o.Set("vanished", c.vanished);
    o.Set("batches", c.batches);
    o.Set("method", c.flushed ? "flush" : "dump");
    o.Set("cancelled", c.cancelled);
    o.Set("limitReached", c.limitReached);
    o.Set("lostReports", c.lostReports);
    return o;
  }

  bool cancelled() const { return opts_.cancel && __atomic_load_n(opts_.cancel, __ATOMIC_RELAXED) != 0; }

  void run(const ExecutionProgress& progress) {
    if (opts_.allowFlush && !opts_.dryRun && opts_.limit < 0 && !opts_.wantEntries && filter_.flushable()) {
      runFlush();
      return;
    }
    PolicyTimeouts timeouts;
    inNetns(ns_->fd.get(), [&] { timeouts = PolicyTimeouts::readFromProc(); });
    DumpReader reader(ns_->fd.get(), filter_.dumpFilter(), "purge");
    if (!opts_.dryRun) {
      del_.emplace(NetlinkSocket::open(ns_->fd.get(), "delete"));
      del_->setReceiveBuffer(kDeleteRcvBuf);
      del_->setSendBuffer(kDeleteSndBuf);
      del_->capAcks();
      const int sndbuf = del_->sendBufferSize();
      batchLimit_ = std::min(kMaxBatchBytes, static_cast<size_t>(sndbuf > 8192 ? sndbuf - 4096 : 4096));
      batch_.reserve(batchLimit_ + 512);
      replyBuf_.resize(256 * 1024);
    }
    const uint64_t now = realtimeNowNs();
    const bool needAge = filter_.needsAge() || opts_.wantEntries;
    bool stop = false;
    auto lastReport = Clock::now();
    bool more = true;
    while (more && !stop) {
      more = reader.next([&](const Entry& e) {
        if (stop) return;
        counts_.scanned++;
        const Age age = needAge ? estimateAge(e, timeouts, now) : Age{};
        if (!filter_.matches(e, age)) return;
        if (opts_.limit >= 0 && requested_ >= opts_.limit) {
          counts_.limitReached = true;
          stop = true;
          return;
        }
        counts_.matched++;
        requested_++;
        if (opts_.dryRun) {
          if (opts_.wantEntries) appendRecord(pending_, e, age);
          return;
        }
        if (!batch_.empty() && batch_.size() + deleteMessageSize(e) > batchLimit_) sendBatch();
        lastMsgOffset_ = batch_.size();
        const uint32_t seq = del_->nextSeq();
        if (!appendDelete(batch_, e, seq, false)) return;
        batchSeqs_.push_back(seq);
        if (opts_.wantEntries) appendRecord(batchRecords_, e, age);
      });
      // Deletes go out after every dump buffer: an entry is deleted milliseconds after
      // it was read, while the dump carries on.
      if (!batch_.empty()) sendBatch();
      if (cancelled()) {
        counts_.cancelled = true;
        stop = true;
      }
      if (pending_.size() >= kRecordsPerReport * kRecordSize || Clock::now() - lastReport > std::chrono::milliseconds(200)) {
        report(progress);
        lastReport = Clock::now();
      }
    }
    report(progress);
  }

  void report(const ExecutionProgress& progress) {
    ProgressItem item;
    item.counts = counts_;
    item.records.swap(pending_);
    progress.Send(&item, 1);
  }

  void sendBatch() {
    auto* last = reinterpret_cast<nlmsghdr*>(batch_.data() + lastMsgOffset_);
    // Only the last message asks for an ACK: it is the barrier that tells us the kernel
    // has processed (and answered errors for) everything before it.
    last->nlmsg_flags |= NLM_F_ACK;
    const uint32_t ackSeq = last->nlmsg_seq;
    del_->send(batch_.data(), batch_.size(), "delete");
    counts_.batches++;
    vanishedSeqs_.clear();
    bool acked = false;
    while (!acked) {
      size_t n = 0;
      try {
        n = del_->receive(replyBuf_.data(), replyBuf_.size(), "delete");
      } catch (const SysError& e) {
        // ENOBUFS: the kernel dropped replies. The deletes still happened; we just can't
        // tell which of them were "already gone". Say so instead of guessing.
        if (e.errnum != ENOBUFS) throw;
        counts_.lostReports++;
        break;
      }
      int len = static_cast<int>(n);
      for (const nlmsghdr* m = reinterpret_cast<const nlmsghdr*>(replyBuf_.data()); mnl_nlmsg_ok(m, len);
           m = mnl_nlmsg_next(m, &len)) {
        if (m->nlmsg_type != NLMSG_ERROR) continue;
        const int err = -static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m))->error;
        if (err == ENOENT) vanishedSeqs_.push_back(m->nlmsg_seq);
        else if (err != 0) throwErrno("sendmsg", "delete", err);
        if (m->nlmsg_seq == ackSeq) acked = true;
      }
    }
    const double vanished = static_cast<double>(vanishedSeqs_.size());
    counts_.vanished += vanished;
    counts_.deleted += static_cast<double>(batchSeqs_.size()) - vanished;
    if (opts_.wantEntries) {
      size_t v = 0;
      for (size_t i = 0; i < batchSeqs_.size(); i++) {
        // Both lists are in sequence order: the kernel answers in the order it processes.
        if (v < vanishedSeqs_.size() && vanishedSeqs_[v] == batchSeqs_[i]) {
          v++;
          continue;
        }
        pending_.insert(pending_.end(), batchRecords_.begin() + static_cast<long>(i * kRecordSize),
                        batchRecords_.begin() + static_cast<long>((i + 1) * kRecordSize));
      }
    }
    batch_.clear();
    batchSeqs_.clear();
    batchRecords_.clear();
  }

  void runFlush() {
    NetlinkSocket s = NetlinkSocket::open(ns_->fd.get(), "flush");
    char buf[MNL_SOCKET_BUFFER_SIZE];
    GlobalStats before, after;
    s.request(buildStatsRequest(buf, s.nextSeq(), false), "flush", [&](const nlmsghdr* m) { parseGlobalStats(m, before); });
    nlmsghdr* nlh = buildFlushRequest(buf, s.nextSeq(), filter_.dumpFilter());
    // Belt and braces: a DELETE without tuple and without any filter attribute empties
    // the whole table. flushable() already excludes it; never send one regardless.
    if (nlh->nlmsg_len <= MNL_ALIGN(sizeof(nlmsghdr)) + MNL_ALIGN(sizeof(nfgenmsg))) {
      throw SysError::fromErrno(EINVAL, "", "flush", "refusing an unfiltered flush");
    }
    s.request(nlh, "flush", [](const nlmsghdr*) {});
    s.request(buildStatsRequest(buf, s.nextSeq(), false), "flush", [&](const nlmsghdr* m) { parseGlobalStats(m, after); });
    counts_.flushed = true;
    counts_.scanned = before.entries;
    counts_.deleted = before.entries > after.entries ? before.entries - after.entries : 0;
    counts_.matched = counts_.deleted;
  }

  Napi::Promise::Deferred deferred_;
  NamespacePtr ns_;
  Filter filter_;
  PurgeOptions opts_;
  Napi::FunctionReference onProgress_;
  Napi::ObjectReference cancelRef_;
  SysError error_;
  PurgeCounts counts_;
  double requested_ = 0;
  std::optional<NetlinkSocket> del_;
  size_t batchLimit_ = kMaxBatchBytes;
  size_t lastMsgOffset_ = 0;
  std::vector<char> batch_;
  std::vector<uint32_t> batchSeqs_;
  std::vector<uint8_t> batchRecords_;
  std::vector<uint8_t> pending_;
  std::vector<uint32_t> vanishedSeqs_;
  std::vector<char> replyBuf_;
};

}  // namespace

Napi::Value startPurge(const Napi::CallbackInfo& info, NamespacePtr ns) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsObject()) {
    throw Napi::TypeError::New(env, "ctpurge: purge(filter, options, onProgress?) expects objects");
  }
  Filter filter = filterFromJs(info[0].As<Napi::Object>());
  Napi::Object o = info[1].As<Napi::Object>();
  PurgeOptions opts;
  opts.dryRun = o.Get("dryRun").ToBoolean();
  Napi::Value limit = o.Get("limit");
  opts.limit = limit.IsNumber() ? limit.As<Napi::Number>().DoubleValue() : -1;
  opts.wantEntries = o.Get("wantEntries").ToBoolean();
  opts.allowFlush = !o.Has("allowFlush") || o.Get("allowFlush").ToBoolean();
  Napi::Value cancel = o.Get("cancel");
  if (cancel.IsTypedArray() && cancel.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
    opts.cancel = cancel.As<Napi::Int32Array>().Data();
  } else {
    cancel = env.Undefined();
  }
  Napi::Function onProgress;
  if (info.Length() > 2 && info[2].IsFunction()) onProgress = info[2].As<Napi::Function>();
  auto* w = new PurgeWorker(env, std::move(ns), std::move(filter), opts, onProgress, cancel);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace ctpurge

#include "purgeWorker.h"

#include <cstring>
#include <mutex>
#include <optional>
#include <vector>

#include "ctRequest.h"
#include "filter.h"
#include "jsConvert.h"
#include "lanes.h"
#include "purgeLane.h"

namespace ctpurge {
namespace {

struct PurgeOptions {
  bool dryRun = false;
  double limit = -1;  // < 0: no limit
  uint32_t grace = 0;
  bool collectGraced = false;
  bool wantEntries = false;
  int logFd = -1;                     // write-ahead audit log (NDJSON)
  std::optional<std::string> logTag;  // an audit log: more members for each line (",\"run\":...")
};

struct ProgressItem {
  PurgeCounts counts;
  std::vector<uint8_t> records;
};

class PurgeWorker : public Napi::AsyncProgressQueueWorker<ProgressItem> {
 public:
  PurgeWorker(Napi::Env env, NamespacePtr ns, bool flush, std::vector<Lane> lanes, PurgeOptions opts, Napi::Function onProgress, Napi::Value cancel)
      : Napi::AsyncProgressQueueWorker<ProgressItem>(env, "ctpurge:purge"),
        deferred_(Napi::Promise::Deferred::New(env)),
        ns_(std::move(ns)),
        flush_(flush),
        lanes_(std::move(lanes)),
        opts_(std::move(opts)),
        cancel_(cancel) {
    if (!onProgress.IsEmpty()) onProgress_ = Napi::Persistent(onProgress);
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute(const ExecutionProgress& progress) override {
    if (auto failure = captureFailure([&] { run(progress); }, "purge")) {
      error_ = *failure;
      SetError(error_.message.empty() ? "purge failed" : error_.message);
    }
  }

  // Like PromiseWorker: nothing may throw out of these while an environment is torn down.
  void OnProgress(const ProgressItem* items, size_t n) override {
    if (onProgress_.IsEmpty() || items == nullptr) return;
    try {
      Napi::Env env = Env();
      Napi::HandleScope scope(env);
      for (size_t i = 0; i < n; i++) {
        Napi::Value records = items[i].records.empty() ? env.Undefined() : Napi::Value(toArrayBuffer(env, items[i].records));
        // The JS side catches what its callbacks throw and reports it once the purge is done.
        onProgress_.Call({countsToJs(env, items[i].counts), records});
      }
    } catch (...) {}
  }

  void OnOK() override {
    try {
      Napi::HandleScope scope(Env());
      Napi::Object result = countsToJs(Env(), counts_);
      if (opts_.collectGraced) {
        Napi::ArrayBuffer ids = Napi::ArrayBuffer::New(Env(), gracedIds_.size() * sizeof(uint32_t));
        if (!gracedIds_.empty()) std::memcpy(ids.Data(), gracedIds_.data(), gracedIds_.size() * sizeof(uint32_t));
        result.Set("gracedIds", Napi::Uint32Array::New(Env(), gracedIds_.size(), ids, 0));
      }
      deferred_.Resolve(result);
    } catch (...) {}
  }

  void OnError(const Napi::Error&) override {
    try {
      Napi::HandleScope scope(Env());
      Napi::Error e = toJsError(Env(), error_);
      // What was already deleted stays deleted: say how far the purge got.
      e.Value().Set("partial", countsToJs(Env(), counts_));
      deferred_.Reject(e.Value());
    } catch (...) {}
  }

 private:
  static Napi::Object countsToJs(Napi::Env env, const PurgeCounts& c) {
    Napi::Object o = Napi::Object::New(env);
    setNumbers(o, {{"scanned", c.scanned},
                   {"matched", c.matched},
                   {"deleted", c.deleted},
                   {"vanished", c.vanished},
                   {"batches", c.batches},
                   {"lostReports", c.lostReports},
                   {"logged", c.logged},
                   {"graced", c.graced},
                   {"fixedTimeout", c.fixedTimeout},
                   {"offloaded", c.offloaded},
                   {"expiring", c.expiring}});
    o.Set("method", c.flushed ? "flush" : "dump");
    o.Set("cancelled", c.cancelled);
    o.Set("limitReached", c.limitReached);
    if (c.logErrno != 0) {
      o.Set("logErrno", -c.logErrno);
      o.Set("logCode", errnoCode(c.logErrno));
    }
    return o;
  }

  void run(const ExecutionProgress& progress) {
    // A cancel that came before the run starts (an aborted signal, a SIGTERM while waiting
    // for the lock) ends it with nothing read and nothing deleted.
    if (cancel_.requested()) {
      counts_.cancelled = true;
      return;
    }
    if (flush_) {
      // The plan chose the flush (src/plan.ts). A flush deletes what no one has seen: never in a
      // dry run, with a limit, with entries wanted, with an audit log, or for a grace.
      if (opts_.dryRun || opts_.limit >= 0 || opts_.wantEntries || opts_.logFd >= 0 || opts_.grace > 0) {
        throw SysError::fromErrno(EINVAL, "", "flush", "refusing a flush for a purge that must see each entry");
      }
      runFlush();
      return;
    }
    shared_.nsFd = ns_->fd.get();
    shared_.dryRun = opts_.dryRun;
    shared_.limit = opts_.limit;
    shared_.grace = opts_.grace;
    shared_.collectGraced = opts_.collectGraced;
    shared_.wantEntries = opts_.wantEntries;
    shared_.cancel = cancel_.get();
    std::optional<LineSink> log;
    if (opts_.logFd >= 0) log.emplace(opts_.logFd, [this] { return shared_.cancelled(); });
    shared_.log = log ? &*log : nullptr;
    shared_.logTag = opts_.logTag;
    inNetns(shared_.nsFd, [&] { shared_.timeouts = PolicyTimeouts::readFromProc(); });
    shared_.nowNs = realtimeNowNs();

    std::vector<PurgeLane> lanes;
    lanes.reserve(lanes_.size());
    for (Lane& l : lanes_) lanes.emplace_back(std::move(l), shared_);
    std::vector<PurgeCounts> latest(lanes.size());
    std::mutex reportLock;
    auto reporter = [&](size_t lane) {
      return [&, lane](const PurgeCounts& c, std::vector<uint8_t>&& records) {
        std::lock_guard<std::mutex> g(reportLock);
        latest[lane] = c;
        ProgressItem item;
        for (const PurgeCounts& l : latest) item.counts.add(l);
        item.records = std::move(records);
        progress.Send(&item, 1);
      };
    };
    // One lane failing stops the others at their next buffer.
    runLanes(
        lanes.size(), [&](size_t i) { lanes[i].run(reporter(i)); }, [&](size_t) { shared_.abort.store(true); });
    for (PurgeLane& l : lanes) {
      counts_.add(l.counts());
      gracedIds_.insert(gracedIds_.end(), l.gracedIds().begin(), l.gracedIds().end());
    }
  }

  void runFlush() {
    NetlinkSocket s = NetlinkSocket::open(ns_->fd.get(), "flush");
    char buf[MNL_SOCKET_BUFFER_SIZE] = {};  // zeroed: no stack bytes reach the kernel in padding
    GlobalStats before, after;
    s.request(buildStatsRequest(buf, s.nextSeq(), false), "flush", [&](const nlmsghdr* m) { parseGlobalStats(m, before); });
    // One request per lane: the plan's flush requests (one per family when the query has tuple
    // conditions but names no family).
    for (const Lane& part : lanes_) {
      // No flush request is sent after a cancel (the ones before it are done).
      if (cancel_.requested()) {
        counts_.cancelled = true;
        break;
      }
      std::memset(buf, 0, sizeof buf);
      nlmsghdr* nlh = buildFlushRequest(buf, s.nextSeq(), part.kernel);
      // A DELETE without tuple and without any filter attribute empties the whole table.
      if (nlh->nlmsg_len <= MNL_ALIGN(sizeof(nlmsghdr)) + MNL_ALIGN(sizeof(nfgenmsg))) {
        throw SysError::fromErrno(EINVAL, "", "flush", "refusing an unfiltered flush");
      }
      s.request(nlh, "flush", [](const nlmsghdr*) {});
    }
    s.request(buildStatsRequest(buf, s.nextSeq(), false), "flush", [&](const nlmsghdr* m) { parseGlobalStats(m, after); });
    counts_.flushed = true;
    counts_.scanned = before.entries;
    counts_.deleted = before.entries > after.entries ? before.entries - after.entries : 0;
    counts_.matched = counts_.deleted;
  }

  Napi::Promise::Deferred deferred_;
  NamespacePtr ns_;
  bool flush_;               // the plan's method: one filtered flush request per lane
  std::vector<Lane> lanes_;  // the plan's disjoint lanes (or flush requests)
  PurgeOptions opts_;
  Napi::FunctionReference onProgress_;
  CancelFlag cancel_;
  SysError error_;
  PurgeCounts counts_;
  std::vector<uint32_t> gracedIds_;
  PurgeShared shared_;
};

}  // namespace

Napi::Value startPurge(const Napi::CallbackInfo& info, NamespacePtr ns) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsArray() || !info[2].IsObject()) {
    throw Napi::TypeError::New(env, "ctpurge: purge(method, lanes, options, onProgress?)");
  }
  const std::string method = info[0].As<Napi::String>().Utf8Value();
  if (method != "flush" && method != "dump") throw Napi::TypeError::New(env, "ctpurge: purge method must be 'flush' or 'dump'");
  std::vector<Lane> lanes = lanesFromJs(info[1]);
  Napi::Object o = info[2].As<Napi::Object>();
  PurgeOptions opts;
  opts.dryRun = ownGet(o, "dryRun").ToBoolean();
  Napi::Value limit = ownGet(o, "limit");
  opts.limit = limit.IsNumber() ? limit.As<Napi::Number>().DoubleValue() : -1;
  opts.wantEntries = ownGet(o, "wantEntries").ToBoolean();
  Napi::Value grace = ownGet(o, "grace");
  if (grace.IsNumber()) {
    const double g = grace.As<Napi::Number>().DoubleValue();
    // The kernel's timeout is seconds in a u32; 0 would expire the entry at once (a delete).
    if (!(g >= 1 && g <= 0x7fffffff)) throw Napi::RangeError::New(env, "ctpurge: grace must be 1 to 2147483647 seconds");
    opts.grace = static_cast<uint32_t>(g);
  }
  opts.collectGraced = opts.grace > 0 && ownGet(o, "collectGraced").ToBoolean();
  Napi::Value logFd = ownGet(o, "logFd");
  opts.logFd = logFd.IsNumber() ? logFd.As<Napi::Number>().Int32Value() : -1;
  Napi::Value logTag = ownGet(o, "logTag");
  if (logTag.IsString()) opts.logTag = logTag.As<Napi::String>().Utf8Value();
  Napi::Function onProgress;
  if (info.Length() > 3 && info[3].IsFunction()) onProgress = info[3].As<Napi::Function>();
  return queueWorker<PurgeWorker>(env, std::move(ns), method == "flush", std::move(lanes), opts, onProgress, ownGet(o, "cancel"));
}

}  // namespace ctpurge

#include "handle.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <array>
#include <vector>

#include "addonData.h"
#include "ctRequest.h"
#include "dumpCursor.h"
#include "dumpReader.h"
#include "entryRecord.h"
#include "eventCursor.h"
#include "exportWorker.h"
#include "jsConvert.h"
#include "lanes.h"
#include "purgeWorker.h"
#include "singleRequest.h"
#include "summaryWorker.h"

namespace ctpurge {
namespace {

class OpenWorker : public PromiseWorker {
 public:
  OpenWorker(Napi::Env env, std::string path) : PromiseWorker(env, "ctpurge:open"), path_(std::move(path)) {}

 protected:
  void Run() override {
    auto ns = std::make_shared<Namespace>();
    ns->label = path_;
    if (!path_.empty()) {
      ns->fd = openNetnsFile(path_);
      // What was opened, not what the path names now: a /proc/PID path may name another
      // namespace once the process is gone and its pid reused.
      struct stat st {};
      if (::fstat(ns->fd.get(), &st) != 0) throwErrno("fstat", "open", errno);
      ns->inode = static_cast<double>(st.st_ino);
    }
    // Ask for the global stats once: ctnetlink checks CAP_NET_ADMIN per request, so a
    // missing capability shows here, at open, rather than halfway through a purge.
    NetlinkSocket s = NetlinkSocket::open(ns->fd.get(), "open");
    char buf[MNL_SOCKET_BUFFER_SIZE] = {};  // zeroed: no stack bytes reach the kernel in padding
    s.request(buildStatsRequest(buf, s.nextSeq(), false), "open", [](const nlmsghdr*) {});
    ns_ = std::move(ns);
  }
  Napi::Value Resolve(Napi::Env env) override { return Handle::NewInstance(env, ns_); }

 private:
  std::string path_;
  NamespacePtr ns_;
};

class StatsWorker : public PromiseWorker {
 public:
  StatsWorker(Napi::Env env, NamespacePtr ns) : PromiseWorker(env, "ctpurge:stats"), ns_(std::move(ns)) {}

 protected:
  void Run() override {
    NetlinkSocket s = NetlinkSocket::open(ns_->fd.get(), "stats");
    char buf[MNL_SOCKET_BUFFER_SIZE] = {};  // zeroed: no stack bytes reach the kernel in padding
    s.request(buildStatsRequest(buf, s.nextSeq(), false), "stats", [&](const nlmsghdr* m) { parseGlobalStats(m, global_); });
    s.request(buildStatsRequest(buf, s.nextSeq(), true), "stats", [&](const nlmsghdr* m) {
      CpuStats c;
      parseCpuStats(m, c);
      cpus_.push_back(c);
    });
  }
  Napi::Value Resolve(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("count", global_.entries);
    o.Set("max", global_.maxEntries);
    Napi::Array cpus = Napi::Array::New(env, cpus_.size());
    for (size_t i = 0; i < cpus_.size(); i++) {
      const CpuStats& c = cpus_[i];
      Napi::Object x = Napi::Object::New(env);
      setNumbers(x, {{"cpu", c.cpu},
                     {"found", c.found},
                     {"invalid", c.invalid},
                     {"insert", c.insert},
                     {"insertFailed", c.insertFailed},
                     {"drop", c.drop},
                     {"earlyDrop", c.earlyDrop},
                     {"error", c.error},
                     {"searchRestart", c.searchRestart},
                     {"clashResolve", c.clashResolve},
                     {"chainTooLong", c.chainTooLong}});
      cpus.Set(static_cast<uint32_t>(i), x);
    }
    o.Set("cpus", cpus);
    return o;
  }

 private:
  NamespacePtr ns_;
  GlobalStats global_;
  std::vector<CpuStats> cpus_;
};

class CountWorker : public PromiseWorker {
 public:
  CountWorker(Napi::Env env, NamespacePtr ns, std::vector<Lane> lanes) : PromiseWorker(env, "ctpurge:count"), ns_(std::move(ns)), lanes_(std::move(lanes)) {}

 protected:
  void Run() override {
    PolicyTimeouts timeouts;
    if (lanes_[0].match.needsAge()) inNetns(ns_->fd.get(), [&] { timeouts = PolicyTimeouts::readFromProc(); });
    const uint64_t now = realtimeNowNs();
    std::vector<uint64_t> counts(lanes_.size());
    scanLanes(ns_->fd.get(), lanes_, "count", timeouts, now, false, nullptr, [&](size_t i, const Entry&, const Ages&) { counts[i]++; });
    for (uint64_t c : counts) count_ += c;
  }
  Napi::Value Resolve(Napi::Env env) override { return Napi::Number::New(env, static_cast<double>(count_)); }

 private:
  NamespacePtr ns_;
  std::vector<Lane> lanes_;
  uint64_t count_ = 0;
};

enum class SingleOp { Get, Create, Delete };

class SingleWorker : public PromiseWorker {
 public:
  SingleWorker(Napi::Env env, NamespacePtr ns, EntrySpec spec, SingleOp op) : PromiseWorker(env, "ctpurge:entry"), ns_(std::move(ns)), spec_(spec), op_(op) {}

 protected:
  void Run() override {
    NetlinkSocket s = NetlinkSocket::open(ns_->fd.get(), "entry");
    switch (op_) {
      case SingleOp::Get: {
        Entry e;
        found_ = getEntry(s, spec_, e);
        if (found_) {
          PolicyTimeouts timeouts;
          inNetns(ns_->fd.get(), [&] { timeouts = PolicyTimeouts::readFromProc(); });
          appendRecord(record_, e, estimateAges(e, timeouts, realtimeNowNs()));
        }
        break;
      }
      case SingleOp::Create: createEntry(s, spec_); break;
      case SingleOp::Delete: found_ = deleteEntry(s, spec_); break;
    }
  }
  Napi::Value Resolve(Napi::Env env) override {
    switch (op_) {
      case SingleOp::Get: return found_ ? toArrayBuffer(env, record_) : env.Null();
      case SingleOp::Create: return env.Undefined();
      case SingleOp::Delete: return Napi::Boolean::New(env, found_);
    }
    return env.Undefined();
  }

 private:
  NamespacePtr ns_;
  EntrySpec spec_;
  SingleOp op_;
  bool found_ = false;
  std::vector<uint8_t> record_;
};

class SettingsWorker : public PromiseWorker {
 public:
  SettingsWorker(Napi::Env env, NamespacePtr ns) : PromiseWorker(env, "ctpurge:settings"), ns_(std::move(ns)) {}

 protected:
  void Run() override {
    inNetns(ns_->fd.get(), [&] {
      t_ = PolicyTimeouts::readFromProc();
      for (size_t i = 0; i < kFlags.size(); i++) flags_[i] = readConntrackSysctl(kFlags[i]);
    });
  }
  Napi::Value Resolve(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("timeouts", timeoutsToJs(env, t_));
    Napi::Object sysctl = Napi::Object::New(env);
    for (size_t i = 0; i < kFlags.size(); i++) {
      if (flags_[i] >= 0) sysctl.Set(kFlags[i], Napi::Number::New(env, static_cast<double>(flags_[i])));
    }
    o.Set("sysctl", sysctl);
    return o;
  }

 private:
  // Per-namespace settings doctor reports on.
  static constexpr std::array<const char*, 6> kFlags = {"timestamp", "acct", "tcp_loose", "tcp_be_liberal", "buckets", "max"};
  NamespacePtr ns_;
  PolicyTimeouts t_;
  std::array<long, 6> flags_ = {};
};

Napi::Object objectArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsObject()) throw Napi::TypeError::New(info.Env(), "ctpurge: expected an object argument");
  return info[i].As<Napi::Object>();
}

}  // namespace

Napi::Function Handle::Define(Napi::Env env) {
  return DefineClass(env, "ConntrackHandle",
                     {
                         InstanceMethod<&Handle::Stats>("stats"),
                         InstanceMethod<&Handle::Count>("count"),
                         InstanceMethod<&Handle::Get>("get"),
                         InstanceMethod<&Handle::Create>("create"),
                         InstanceMethod<&Handle::Delete>("delete"),
                         InstanceMethod<&Handle::Settings>("settings"),
                         InstanceMethod<&Handle::Dump>("dump"),
                         InstanceMethod<&Handle::Purge>("purge"),
                         InstanceMethod<&Handle::Export>("export"),
                         InstanceMethod<&Handle::Summary>("summary"),
                         InstanceMethod<&Handle::Events>("events"),
                         InstanceMethod<&Handle::Close>("close"),
                         InstanceMethod<&Handle::Inode>("inode"),
                     });
}

Napi::Value Handle::Open(const Napi::CallbackInfo& info) {
  std::string path;
  if (info.Length() > 0 && info[0].IsString()) path = info[0].As<Napi::String>().Utf8Value();
  return queueWorker<OpenWorker>(info.Env(), std::move(path));
}

Napi::Object Handle::NewInstance(Napi::Env env, NamespacePtr ns) {
  AddonData* data = env.GetInstanceData<AddonData>();
  Napi::Object o = data->handleCtor.New({});
  Handle::Unwrap(o)->ns_ = std::move(ns);
  return o;
}

Handle::Handle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Handle>(info) {}

NamespacePtr Handle::checkedNs(Napi::Env env) const {
  if (!ns_) throw Napi::Error::New(env, "ctpurge: the handle is closed");
  return ns_;
}

Napi::Value Handle::Stats(const Napi::CallbackInfo& info) { return queueWorker<StatsWorker>(info.Env(), checkedNs(info.Env())); }

Napi::Value Handle::Count(const Napi::CallbackInfo& info) {
  if (info.Length() < 1) throw Napi::TypeError::New(info.Env(), "ctpurge: count(lanes)");
  return queueWorker<CountWorker>(info.Env(), checkedNs(info.Env()), lanesFromJs(info[0]));
}

Napi::Value Handle::Get(const Napi::CallbackInfo& info) {
  return queueWorker<SingleWorker>(info.Env(), checkedNs(info.Env()), entrySpecFromJs(objectArg(info, 0)), SingleOp::Get);
}

Napi::Value Handle::Create(const Napi::CallbackInfo& info) {
  return queueWorker<SingleWorker>(info.Env(), checkedNs(info.Env()), entrySpecFromJs(objectArg(info, 0)), SingleOp::Create);
}

Napi::Value Handle::Delete(const Napi::CallbackInfo& info) {
  return queueWorker<SingleWorker>(info.Env(), checkedNs(info.Env()), entrySpecFromJs(objectArg(info, 0)), SingleOp::Delete);
}

Napi::Value Handle::Settings(const Napi::CallbackInfo& info) { return queueWorker<SettingsWorker>(info.Env(), checkedNs(info.Env())); }

Napi::Value Handle::Dump(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t chunk = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 4096;
  const TextFormat format = textFormatFromJs(info[2], TextFormat::Records, {TextFormat::Records, TextFormat::Ndjson}, "dump");
  return DumpCursor::NewInstance(env, checkedNs(env), laneFromJs(objectArg(info, 0)), chunk, format);
}

Napi::Value Handle::Purge(const Napi::CallbackInfo& info) { return startPurge(info, checkedNs(info.Env())); }

Napi::Value Handle::Export(const Napi::CallbackInfo& info) { return startExport(info, checkedNs(info.Env())); }

Napi::Value Handle::Summary(const Napi::CallbackInfo& info) { return startSummary(info, checkedNs(info.Env())); }

Napi::Value Handle::Events(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint32_t groups = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 7;
  const int rcvbuf = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : 0;
  const TextFormat f = textFormatFromJs(info[3], TextFormat::Records, {TextFormat::Records, TextFormat::Ndjson, TextFormat::Conntrack}, "events");
  const bool timestamps = info.Length() > 4 && info[4].ToBoolean();
  return EventCursor::NewInstance(env, checkedNs(env), filterFromJs(objectArg(info, 0)), groups, rcvbuf, f, timestamps);
}

Napi::Value Handle::Close(const Napi::CallbackInfo& info) {
  // Work already queued keeps its own reference to the namespace and finishes.
  ns_.reset();
  return info.Env().Undefined();
}

Napi::Value Handle::Inode(const Napi::CallbackInfo& info) {
  const NamespacePtr ns = checkedNs(info.Env());
  return ns->inode < 0 ? info.Env().Null() : Napi::Value(Napi::Number::New(info.Env(), ns->inode));
}

}  // namespace ctpurge

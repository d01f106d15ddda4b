#include "summaryWorker.h"

#include <algorithm>

#include "jsConvert.h"
#include "lanes.h"
#include "tableSummary.h"

namespace ctpurge {
namespace {

using ExactCounts = std::unordered_map<AddressKey, double, AddressKeyHash>;

AddressKey keyOf(uint8_t family, const uint8_t* addr) {
  AddressKey k;
  k.family = family;
  std::memcpy(k.addr, addr, 16);
  return k;
}

class SummaryWorker : public PromiseWorker {
 public:
  SummaryWorker(Napi::Env env, NamespacePtr ns, std::vector<Filter> lanes, bool talkers, size_t capacity)
      : PromiseWorker(env, "ctpurge:summary"), ns_(std::move(ns)), lanes_(std::move(lanes)), talkers_(talkers), capacity_(capacity) {}

 protected:
  void Run() override {
    PolicyTimeouts timeouts;
    inNetns(ns_->fd.get(), [&] { timeouts = PolicyTimeouts::readFromProc(); });
    const uint64_t now = realtimeNowNs();
    const size_t n = lanes_.size();
    std::vector<TableCounts> counts(n);
    std::vector<HeavyHitters> src(n, HeavyHitters(capacity_)), dst(n, HeavyHitters(capacity_));
    // Pass 1: everything but exact talker counts.
    scanLanes(ns_->fd.get(), lanes_, "summary", timeouts, now, true, [&](size_t i, const Entry& e, const Ages& ages) {
      counts[i].add(e, ages);
      if (talkers_) {
        src[i].add(keyOf(e.family, e.orig.src));
        dst[i].add(keyOf(e.family, e.orig.dst));
      }
    });
    for (size_t i = 1; i < n; i++) counts[0].merge(counts[i]);
    counts_ = std::move(counts[0]);
    if (!talkers_) return;
    // No more distinct addresses than counters: the counts held are exact, one pass is enough.
    bool exact = true;
    for (size_t i = 0; i < n; i++) exact = exact && src[i].exact() && dst[i].exact();
    if (exact) {
      for (size_t i = 0; i < n; i++) {
        src[i].countsInto(srcExact_);
        dst[i].countsInto(dstExact_);
      }
      return;
    }
    // Every address seen more than N/capacity times in a lane is held by that lane's
    // counters, so the union holds every address above N/capacity overall. Pass 2 counts
    // exactly those (the table may have changed in between: these are the counts of pass 2).
    for (size_t i = 0; i < n; i++) {
      src[i].keysInto(srcExact_);
      dst[i].keysInto(dstExact_);
    }
    std::vector<ExactCounts> srcLane(n, srcExact_), dstLane(n, dstExact_);
    scanLanes(ns_->fd.get(), lanes_, "summary", timeouts, now, false, [&](size_t i, const Entry& e, const Ages&) {
      if (auto it = srcLane[i].find(keyOf(e.family, e.orig.src)); it != srcLane[i].end()) it->second++;
      if (auto it = dstLane[i].find(keyOf(e.family, e.orig.dst)); it != dstLane[i].end()) it->second++;
    });
    for (size_t i = 0; i < n; i++) {
      for (const auto& [k, v] : srcLane[i]) srcExact_[k] += v;
      for (const auto& [k, v] : dstLane[i]) dstExact_[k] += v;
    }
  }

  Napi::Value Resolve(Napi::Env env) override {
    const TableCounts& c = counts_;
    Napi::Object o = Napi::Object::New(env);
    o.Set("total", c.total);
    o.Set("unreplied", c.unreplied);
    o.Set("protocols", doubles(env, c.protocol, 256));
    Napi::Object states = Napi::Object::New(env);
    states.Set("tcp", doubles(env, c.tcpState, 32));
    states.Set("sctp", doubles(env, c.sctpState, 32));
    states.Set("dccp", doubles(env, c.dccpState, 32));
    o.Set("states", states);
    o.Set("ipv4", c.family4);
    o.Set("ipv6", c.family6);
    o.Set("ageSources", doubles(env, c.ageSource, 3));
    o.Set("idle", doubles(env, c.idle, kDurationBuckets));
    o.Set("age", doubles(env, c.age, kDurationBuckets));
    o.Set("candidates", doubles(env, c.candidates, 3));
    // [protocol, port, count] triplets: bounded by protocols with ports x 65,536.
    std::vector<double> ports;
    ports.reserve(c.dport.size() * 3);
    for (const auto& [k, v] : c.dport) {
      ports.push_back(static_cast<double>(k >> 16));
      ports.push_back(static_cast<double>(k & 0xffff));
      ports.push_back(v);
    }
    o.Set("dports", doubles(env, ports.data(), ports.size()));
    // [protocol, state, reply kind, idle buckets..., age buckets...] rows.
    std::vector<double> classes;
    classes.reserve(c.byClass.size() * (3 + 2 * kDurationBuckets));
    for (const auto& [k, h] : c.byClass) {
      classes.push_back(static_cast<double>(k >> 16));
      classes.push_back(static_cast<double>((k >> 8) & 0xff));
      classes.push_back(static_cast<double>(k & 0xff));
      classes.insert(classes.end(), h.begin(), h.end());
    }
    o.Set("classes", doubles(env, classes.data(), classes.size()));
    o.Set("sources", talkers(env, srcExact_));
    o.Set("destinations", talkers(env, dstExact_));
    o.Set("capacity", static_cast<double>(capacity_));
    return o;
  }

 private:
  static Napi::Float64Array doubles(Napi::Env env, const double* v, size_t n) {
    Napi::Float64Array a = Napi::Float64Array::New(env, n);
    std::copy(v, v + n, a.Data());
    return a;
  }

  // { families: Uint8Array, addrs: Uint8Array (16 per key), counts: Float64Array }, every
  // candidate with its exact count, largest first, ties by family and address bytes.
  static Napi::Object talkers(Napi::Env env, const ExactCounts& m) {
    std::vector<std::pair<AddressKey, double>> v(m.begin(), m.end());
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
    Napi::Uint8Array families = Napi::Uint8Array::New(env, v.size());
    Napi::Uint8Array addrs = Napi::Uint8Array::New(env, v.size() * 16);
    Napi::Float64Array counts = Napi::Float64Array::New(env, v.size());
    for (size_t i = 0; i < v.size(); i++) {
      families[i] = v[i].first.family;
      std::memcpy(addrs.Data() + i * 16, v[i].first.addr, 16);
      counts[i] = v[i].second;
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("families", families);
    o.Set("addrs", addrs);
    o.Set("counts", counts);
    return o;
  }

  NamespacePtr ns_;
  std::vector<Filter> lanes_;
  bool talkers_;
  size_t capacity_;
  TableCounts counts_;
  ExactCounts srcExact_, dstExact_;
};

}  // namespace

Napi::Value startSummary(const Napi::CallbackInfo& info, NamespacePtr ns) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[1].IsObject()) throw Napi::TypeError::New(env, "ctpurge: summary(lanes, options)");
  Napi::Object opts = info[1].As<Napi::Object>();
  const bool talkers = ownGet(opts, "talkers").ToBoolean().Value();
  Napi::Value cap = ownGet(opts, "capacity");
  const size_t capacity = cap.IsNumber() ? std::clamp<size_t>(cap.As<Napi::Number>().Uint32Value(), 16, 1u << 20) : 16384;
  auto* w = new SummaryWorker(env, std::move(ns), lanesFromJs(info[0]), talkers, capacity);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace ctpurge

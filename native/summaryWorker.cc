#include "summaryWorker.h"

#include <algorithm>
#include <cmath>

#include "jsConvert.h"
#include "lanes.h"
#include "tableSummary.h"
#include "talkerCounts.h"

namespace ctpurge {
namespace {

using ExactCounts = std::unordered_map<AddressKey, double, AddressKeyHash>;
using Ranking = std::vector<std::pair<AddressKey, double>>;

// The `top` largest counts seen, ties by family and address bytes, kept in a heap whose front
// is the one to drop next.
class TopN {
 public:
  explicit TopN(size_t top) : top_(top) {}
  void offer(const AddressKey& k, double count) {
    if (heap_.size() < top_) {
      heap_.emplace_back(k, count);
      std::push_heap(heap_.begin(), heap_.end(), ahead);
    } else if (top_ > 0 && ahead({k, count}, heap_.front())) {
      std::pop_heap(heap_.begin(), heap_.end(), ahead);
      heap_.back() = {k, count};
      std::push_heap(heap_.begin(), heap_.end(), ahead);
    }
  }
  Ranking take() {
    std::sort_heap(heap_.begin(), heap_.end(), ahead);
    return std::move(heap_);
  }

 private:
  static bool ahead(const std::pair<AddressKey, double>& a, const std::pair<AddressKey, double>& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  }
  size_t top_;
  Ranking heap_;
};

// One side's talkers (sources or destinations), counted per lane.
struct Side {
  std::vector<TalkerCounts> lanes;
  ExactCounts candidates;  // when a lane fell back: the addresses pass 2 counts
  bool exact() const {
    return std::all_of(lanes.begin(), lanes.end(), [](const TalkerCounts& t) { return t.exact(); });
  }
};

class SummaryWorker : public PromiseWorker {
 public:
  struct Options {
    bool talkers;
    size_t capacity, top, memory;
  };
  SummaryWorker(Napi::Env env, NamespacePtr ns, std::vector<Lane> lanes, Options o, Napi::Value cancel)
      : PromiseWorker(env, "ctpurge:summary"), ns_(std::move(ns)), lanes_(std::move(lanes)), o_(o), cancel_(cancel) {}

 protected:
  void Run() override {
    PolicyTimeouts timeouts;
    inNetns(ns_->fd.get(), [&] { timeouts = PolicyTimeouts::readFromProc(); });
    const uint64_t now = realtimeNowNs();
    const size_t n = lanes_.size();
    std::vector<TableCounts> counts(n);
    MemoryBudget budget(o_.memory);
    Side src, dst;
    for (size_t i = 0; i < n && o_.talkers; i++) {
      src.lanes.emplace_back(o_.capacity, budget);
      dst.lanes.emplace_back(o_.capacity, budget);
    }
    // Pass 1: everything, talkers exactly while their counts fit in the budget.
    cancelled_ = !scanLanes(ns_->fd.get(), lanes_, "summary", timeouts, now, true, cancel_.get(), [&](size_t i, const Entry& e, const Ages& ages) {
      counts[i].add(e, ages);
      if (o_.talkers) {
        src.lanes[i].add(e.family, e.orig.src);
        dst.lanes[i].add(e.family, e.orig.dst);
      }
    });
    if (cancelled_) return;
    for (size_t i = 1; i < n; i++) counts[0].merge(counts[i]);
    counts_ = std::move(counts[0]);
    if (!o_.talkers) return;
    const bool srcExact = src.exact(), dstExact = dst.exact();
    if (!srcExact || !dstExact) {
      exactAbove_ = std::floor(counts_.total / static_cast<double>(o_.capacity));
      secondPass(timeouts, now, srcExact ? nullptr : &src, dstExact ? nullptr : &dst);
      if (cancelled_) return;
    }
    sources_ = srcExact ? exactTop(src) : candidateTop(src);
    destinations_ = dstExact ? exactTop(dst) : candidateTop(dst);
  }

  // Every address seen more than N/capacity times in a lane is among that lane's heavy
  // hitters, so the union holds every address above N/capacity overall. Pass 2 counts exactly
  // those (the table may have changed in between: these are the counts of pass 2).
  void secondPass(const PolicyTimeouts& timeouts, uint64_t now, Side* src, Side* dst) {
    const size_t n = lanes_.size();
    for (Side* side : {src, dst}) {
      if (!side) continue;
      for (TalkerCounts& t : side->lanes) {
        t.fallBack();
        t.keysInto(side->candidates);
      }
    }
    std::vector<ExactCounts> srcLane(n, src ? src->candidates : ExactCounts{}), dstLane(n, dst ? dst->candidates : ExactCounts{});
    cancelled_ = !scanLanes(ns_->fd.get(), lanes_, "summary", timeouts, now, false, cancel_.get(), [&](size_t i, const Entry& e, const Ages&) {
      if (src) {
        if (auto it = srcLane[i].find(AddressKey::of(e.family, e.orig.src)); it != srcLane[i].end()) it->second++;
      }
      if (dst) {
        if (auto it = dstLane[i].find(AddressKey::of(e.family, e.orig.dst)); it != dstLane[i].end()) it->second++;
      }
    });
    for (size_t i = 0; i < n; i++) {
      if (src)
        for (const auto& [k, v] : srcLane[i]) src->candidates[k] += v;
      if (dst)
        for (const auto& [k, v] : dstLane[i]) dst->candidates[k] += v;
    }
  }

  // An address can be in several lanes (lanes split by reply status): its count is the sum,
  // taken where it is first seen.
  Ranking exactTop(const Side& side) const {
    TopN top(o_.top);
    const auto& lanes = side.lanes;
    for (size_t i = 0; i < lanes.size(); i++) {
      lanes[i].forEach([&](const AddressKey& k, uint32_t count) {
        for (size_t j = 0; j < i; j++) {
          if (lanes[j].find(k)) return;
        }
        double total = count;
        for (size_t j = i + 1; j < lanes.size(); j++) total += lanes[j].find(k);
        top.offer(k, total);
      });
    }
    return top.take();
  }

  Ranking candidateTop(const Side& side) const {
    TopN top(o_.top);
    for (const auto& [k, v] : side.candidates) top.offer(k, v);
    return top.take();
  }

  Napi::Value Resolve(Napi::Env env) override {
    const TableCounts& c = counts_;
    Napi::Object o = Napi::Object::New(env);
    if (cancelled_) {
      o.Set("cancelled", true);
      return o;
    }
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
    o.Set("sources", talkers(env, sources_));
    o.Set("destinations", talkers(env, destinations_));
    o.Set("exactAbove", exactAbove_);
    return o;
  }

 private:
  static Napi::Float64Array doubles(Napi::Env env, const double* v, size_t n) {
    Napi::Float64Array a = Napi::Float64Array::New(env, n);
    std::copy(v, v + n, a.Data());
    return a;
  }

  // { families: Uint8Array, addrs: Uint8Array (16 per key), counts: Float64Array }, the top
  // addresses with their exact counts, largest first, ties by family and address bytes.
  static Napi::Object talkers(Napi::Env env, const Ranking& v) {
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
  std::vector<Lane> lanes_;
  Options o_;
  CancelFlag cancel_;
  bool cancelled_ = false;
  TableCounts counts_;
  Ranking sources_, destinations_;
  double exactAbove_ = 0;
};

}  // namespace

Napi::Value startSummary(const Napi::CallbackInfo& info, NamespacePtr ns) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[1].IsObject()) throw Napi::TypeError::New(env, "ctpurge: summary(lanes, options)");
  Napi::Object opts = info[1].As<Napi::Object>();
  auto number = [&](const char* key, size_t fallback, size_t lo, size_t hi) {
    Napi::Value v = ownGet(opts, key);
    return v.IsNumber() ? static_cast<size_t>(std::clamp<double>(v.As<Napi::Number>().DoubleValue(), lo, hi)) : fallback;
  };
  SummaryWorker::Options o{
      ownGet(opts, "talkers").ToBoolean().Value(),
      number("capacity", 16384, 16, 1u << 20),
      number("top", 10, 1, 1000),
      // 96 MiB of exact counts: one pass for up to 5.8 million distinct IPv4 addresses
      // (8M slots of 8 bytes, 70% full), or 2.9 million IPv6 ones (4M slots of 20).
      number("memory", 96u << 20, 0, size_t{1} << 40),
  };
  return queueWorker<SummaryWorker>(env, std::move(ns), lanesFromJs(info[0]), o, ownGet(opts, "cancel"));
}

}  // namespace ctpurge

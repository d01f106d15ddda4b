#include "tableSummary.h"

#include <netinet/in.h>

#include <cmath>

namespace ctpurge {
namespace {

constexpr double kBucketBelow[kDurationBuckets - 1] = {60, 600, 3600, 6 * 3600, 86400, 5 * 86400, INFINITY};
constexpr uint8_t kTcpEstablished = 3, kSctpEstablished = 4;

int bucketOf(const Age& a) {
  if (!a.known()) return kDurationBuckets - 1;
  int i = 0;
  while (a.seconds >= kBucketBelow[i]) i++;
  return i;
}

}  // namespace

size_t AddressKeyHash::operator()(const AddressKey& k) const {
  // FNV-1a over the family and the address bytes.
  uint64_t h = 1469598103934665603ull ^ k.family;
  for (uint8_t b : k.addr) h = (h ^ b) * 1099511628211ull;
  return static_cast<size_t>(h ^ (h >> 29));
}

// The heap moves counter indexes; a counter's key and its map entry never move, so a count
// that grows costs no hashing beyond the one lookup.
void HeavyHitters::put(uint32_t pos, uint32_t counter) {
  heap_[pos] = counter;
  counters_[counter].pos = pos;
}

void HeavyHitters::siftDown(uint32_t pos) {
  const uint32_t n = static_cast<uint32_t>(heap_.size());
  const uint32_t moving = heap_[pos];
  const double count = counters_[moving].count;
  for (;;) {
    uint32_t c = 2 * pos + 1;
    if (c >= n) break;
    if (c + 1 < n && counters_[heap_[c + 1]].count < counters_[heap_[c]].count) c++;
    if (!(counters_[heap_[c]].count < count)) break;
    put(pos, heap_[c]);
    pos = c;
  }
  put(pos, moving);
}

void HeavyHitters::siftUp(uint32_t pos) {
  const uint32_t moving = heap_[pos];
  const double count = counters_[moving].count;
  while (pos > 0) {
    const uint32_t p = (pos - 1) / 2;
    if (!(count < counters_[heap_[p]].count)) break;
    put(pos, heap_[p]);
    pos = p;
  }
  put(pos, moving);
}

void HeavyHitters::hold(const AddressKey& k, double count) {
  const uint32_t idx = static_cast<uint32_t>(counters_.size());
  counters_.push_back({k, count, static_cast<uint32_t>(heap_.size())});
  heap_.push_back(idx);
  where_.emplace(k, idx);
  siftUp(counters_[idx].pos);
}

void HeavyHitters::replaceSmallest(const AddressKey& k, double count) {
  replaced_ = true;
  const uint32_t idx = heap_[0];
  Counter& c = counters_[idx];
  where_.erase(c.key);
  c.key = k;
  c.count = count;
  where_.emplace(k, idx);
  siftDown(0);
}

void HeavyHitters::add(const AddressKey& k) {
  auto it = where_.find(k);
  if (it != where_.end()) {
    Counter& c = counters_[it->second];
    c.count += 1;
    siftDown(c.pos);  // a count only grows: it can only move away from the root
    return;
  }
  // A new key: a free counter, or else the smallest one, with one more than it held.
  if (counters_.size() < capacity_)
    hold(k, 1);
  else
    replaceSmallest(k, counters_[heap_[0]].count + 1);
}

void HeavyHitters::seed(const AddressKey& k, double count) {
  if (counters_.size() < capacity_) return hold(k, count);
  replaced_ = true;  // one of the two is dropped
  if (counters_[heap_[0]].count < count) replaceSmallest(k, count);
}

void HeavyHitters::keysInto(std::unordered_map<AddressKey, double, AddressKeyHash>& out) const {
  for (const Counter& c : counters_) out.emplace(c.key, 0.0);
}

void HeavyHitters::countsInto(std::unordered_map<AddressKey, double, AddressKeyHash>& out) const {
  for (const Counter& c : counters_) out[c.key] += c.count;
}

void TableCounts::add(const Entry& e, const Ages& ages) {
  total++;
  const bool noReply = (e.status & 2u) == 0;
  if (noReply) unreplied++;
  protocol[e.protocol]++;
  if (e.state != kNoState && e.state < 32) {
    if (e.protocol == IPPROTO_TCP)
      tcpState[e.state]++;
    else if (e.protocol == IPPROTO_SCTP)
      sctpState[e.state]++;
    else if (e.protocol == IPPROTO_DCCP)
      dccpState[e.state]++;
  }
  if (e.family == AF_INET)
    family4++;
  else
    family6++;
  ageSource[static_cast<int>(ages.age.source)]++;
  const int idleBucket = bucketOf(ages.idle), ageBucket = bucketOf(ages.age);
  idle[idleBucket]++;
  age[ageBucket]++;
  const uint32_t reply = noReply ? 0 : (e.status & 4u) ? 1 : 2;  // IPS_ASSURED
  auto& h = byClass[(static_cast<uint32_t>(e.protocol) << 16) | (static_cast<uint32_t>(e.state) << 8) | reply];
  h[idleBucket]++;
  h[kDurationBuckets + ageBucket]++;
  if (noReply && ages.age.known() && ages.age.seconds >= 3600) candidates[0]++;
  // --state ESTABLISHED selects TCP's and SCTP's ESTABLISHED.
  if ((e.protocol == IPPROTO_TCP && e.state == kTcpEstablished) || (e.protocol == IPPROTO_SCTP && e.state == kSctpEstablished)) {
    if (ages.idle.known() && ages.idle.seconds >= 6 * 3600) candidates[1]++;
    if (ages.idle.known() && ages.idle.seconds >= 86400) candidates[2]++;
  }
  if (e.orig.hasPorts) dport[(static_cast<uint32_t>(e.protocol) << 16) | e.orig.dport]++;
}

void TableCounts::merge(const TableCounts& o) {
  total += o.total;
  unreplied += o.unreplied;
  for (int i = 0; i < 256; i++) protocol[i] += o.protocol[i];
  for (int i = 0; i < 32; i++) {
    tcpState[i] += o.tcpState[i];
    sctpState[i] += o.sctpState[i];
    dccpState[i] += o.dccpState[i];
  }
  family4 += o.family4;
  family6 += o.family6;
  for (int i = 0; i < 3; i++) ageSource[i] += o.ageSource[i];
  for (int i = 0; i < kDurationBuckets; i++) {
    idle[i] += o.idle[i];
    age[i] += o.age[i];
  }
  for (int i = 0; i < 3; i++) candidates[i] += o.candidates[i];
  for (const auto& [k, v] : o.dport) dport[k] += v;
  for (const auto& [k, v] : o.byClass) {
    auto& h = byClass[k];
    for (size_t i = 0; i < v.size(); i++) h[i] += v[i];
  }
}

}  // namespace ctpurge

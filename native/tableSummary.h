// One pass over a table's entries for `stats` / summary(): breakdowns, idle and age buckets,
// what typical purges would free, and the top talkers in bounded memory. No JS object and no
// string per entry; addresses are kept as bytes.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "ctMessage.h"
#include "policyTimeouts.h"

namespace ctpurge {

struct AddressKey {
  uint8_t family = 0;
  uint8_t addr[16] = {};
  // The key of an entry's address (16 bytes; IPv4 in the first 4).
  static AddressKey of(uint8_t family, const uint8_t* addr) {
    AddressKey k;
    k.family = family;
    std::memcpy(k.addr, addr, 16);
    return k;
  }
  bool operator==(const AddressKey& o) const { return family == o.family && std::memcmp(addr, o.addr, 16) == 0; }
  // The order of ties in the top lists: family, then the address bytes.
  bool operator<(const AddressKey& o) const { return family != o.family ? family < o.family : std::memcmp(addr, o.addr, 16) < 0; }
};

struct AddressKeyHash {
  size_t operator()(const AddressKey& k) const;
};

// Space-Saving (Metwally, Agrawal, El Abbadi, 2005): `capacity` counters; a key not held
// replaces the smallest. Every key seen more than N/capacity times is among the keys held, so
// a second pass that counts only those gives exact counts for all of them.
class HeavyHitters {
 public:
  explicit HeavyHitters(size_t capacity) : capacity_(capacity) { where_.reserve(capacity * 2); }
  void add(const AddressKey& k);
  // Holds k with a count already known (its error is the smallest count dropped so far, at
  // most the smallest held): when full, it replaces the smallest counter if it is larger.
  void seed(const AddressKey& k, double count);
  void keysInto(std::unordered_map<AddressKey, double, AddressKeyHash>& out) const;
  // Adds the counts held to out: exact when nothing was ever replaced (exact()).
  void countsInto(std::unordered_map<AddressKey, double, AddressKeyHash>& out) const;
  bool exact() const { return !replaced_; }

 private:
  struct Counter {
    AddressKey key;
    double count;
    uint32_t pos;  // its place in heap_
  };
  void siftDown(uint32_t pos);
  void siftUp(uint32_t pos);
  void put(uint32_t pos, uint32_t counter);
  void hold(const AddressKey& k, double count);
  void replaceSmallest(const AddressKey& k, double count);

  size_t capacity_;
  bool replaced_ = false;
  std::vector<Counter> counters_;
  std::vector<uint32_t> heap_;                                      // counter indexes, a min-heap by count
  std::unordered_map<AddressKey, uint32_t, AddressKeyHash> where_;  // key -> counter index
};

// Bucket upper bounds in seconds, as DURATION_BUCKETS in src/summary.ts; the last slot is "unknown".
constexpr int kDurationBuckets = 8;

struct TableCounts {
  double total = 0, unreplied = 0;
  double protocol[256] = {};
  double tcpState[32] = {}, sctpState[32] = {}, dccpState[32] = {};
  double family4 = 0, family6 = 0;
  double ageSource[3] = {};
  double idle[kDurationBuckets] = {}, age[kDurationBuckets] = {};
  // --unreplied --older 1h; --state ESTABLISHED --idle 6h; --state ESTABLISHED --idle 1d
  double candidates[3] = {};
  std::unordered_map<uint32_t, double> dport;  // (protocol << 16) | port, original direction
  // Idle then age buckets per (protocol << 16) | (state << 8) | reply kind (0 unreplied,
  // 1 assured, 2 replied but not assured): bounded by protocols x states x 3.
  std::unordered_map<uint32_t, std::array<double, 2 * kDurationBuckets>> byClass;

  void add(const Entry& e, const Ages& ages);
  void merge(const TableCounts& o);
};

}  // namespace ctpurge

// Entries per address for the top talkers of `stats` / summary(). Counted exactly while the
// counts fit in memory, so a table of up to a few million distinct addresses needs one pass;
// past the budget, a lane falls back to heavy hitters and the summary counts the candidates
// in a second pass (summaryWorker.cc).
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "tableSummary.h"

namespace ctpurge {

// Bytes all the exact tables of one summary may hold at once, rehash included.
class MemoryBudget {
 public:
  explicit MemoryBudget(size_t bytes) : left_(static_cast<int64_t>(bytes)) {}
  bool take(size_t bytes);
  void give(size_t bytes) { left_.fetch_add(static_cast<int64_t>(bytes)); }

 private:
  std::atomic<int64_t> left_;
};

// Open addressing with linear probing over N-byte addresses: 8 bytes a slot for IPv4, 20 for
// IPv6, no allocation per address. A count of 0 marks an empty slot. Probing runs past the
// power-of-two main region into kSlack overflow slots instead of wrapping around, then (very
// rarely) into a small spill list. That is what lets the table grow in place: its memory is
// an anonymous mapping that mremap() doubles without a copy, and the entries are moved within
// it, so growing never holds the old and the new table at once.
template <size_t N>
class AddressTable {
 public:
  struct Slot {
    uint8_t addr[N];
    uint32_t count;
  };
  AddressTable() = default;
  AddressTable(AddressTable&& o) noexcept;
  AddressTable(const AddressTable&) = delete;
  AddressTable& operator=(const AddressTable&) = delete;
  ~AddressTable();
  // False when the table would have to grow past the budget (nothing is counted then).
  bool add(const uint8_t* addr, MemoryBudget& budget);
  uint32_t find(const uint8_t* addr) const;
  void release(MemoryBudget& budget);
  template <typename Fn>
  void forEach(Fn&& fn) const {
    for (size_t i = 0; i < total(); i++) {
      if (slots_[i].count != 0) fn(slots_[i]);
    }
    for (const Slot& s : spill_) fn(s);
  }

 private:
  static constexpr size_t kSlack = 64;
  static constexpr size_t kMaxSpill = 64;
  size_t total() const { return size_ ? size_ + kSlack : 0; }
  size_t home(const uint8_t* addr) const;
  bool grow(MemoryBudget& budget);
  void place(const Slot& s);  // an address not in the table yet

  Slot* slots_ = nullptr;  // size_ + kSlack slots, mmap()ed
  size_t size_ = 0;        // the main region, a power of two
  size_t used_ = 0;
  std::vector<Slot> spill_;  // probed past the last overflow slot
};

// One lane's counts for one side (sources or destinations).
class TalkerCounts {
 public:
  TalkerCounts(size_t capacity, MemoryBudget& budget) : budget_(&budget), heavy_(capacity) {}
  TalkerCounts(TalkerCounts&&) = default;
  ~TalkerCounts() { release(); }
  void add(uint8_t family, const uint8_t* addr);
  bool exact() const { return !fellBack_; }
  // The exact count of an address (exact() only).
  uint32_t find(const AddressKey& k) const;
  // Calls fn(key, count) for every address counted (exact() only).
  template <typename Fn>
  void forEach(Fn&& fn) const;
  // Gives up the exact tables for heavy hitters seeded with their largest counts. Every
  // address not kept had at most the smallest count kept, which is the invariant Space-Saving
  // keeps, so its guarantee holds from here on.
  void fallBack();
  // The addresses held as heavy hitters (after fallBack()).
  void keysInto(std::unordered_map<AddressKey, double, AddressKeyHash>& out) const { heavy_.keysInto(out); }

 private:
  void release();

  MemoryBudget* budget_;
  bool fellBack_ = false;
  AddressTable<4> v4_;
  AddressTable<16> v6_;
  HeavyHitters heavy_;
};

template <typename Fn>
void TalkerCounts::forEach(Fn&& fn) const {
  AddressKey k;
  k.family = 2;  // AF_INET
  v4_.forEach([&](const AddressTable<4>::Slot& s) {
    std::memcpy(k.addr, s.addr, 4);
    fn(k, s.count);
  });
  k = AddressKey{};
  k.family = 10;  // AF_INET6
  v6_.forEach([&](const AddressTable<16>::Slot& s) {
    std::memcpy(k.addr, s.addr, 16);
    fn(k, s.count);
  });
}

}  // namespace ctpurge

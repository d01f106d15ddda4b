#include "talkerCounts.h"

#include <netinet/in.h>
#include <sys/mman.h>

namespace ctpurge {

bool MemoryBudget::take(size_t bytes) {
  if (left_.fetch_sub(static_cast<int64_t>(bytes)) >= static_cast<int64_t>(bytes)) return true;
  give(bytes);
  return false;
}

template <size_t N>
AddressTable<N>::AddressTable(AddressTable&& o) noexcept : slots_(o.slots_), size_(o.size_), used_(o.used_), spill_(std::move(o.spill_)) {
  o.slots_ = nullptr;
  o.size_ = o.used_ = 0;
}

template <size_t N>
AddressTable<N>::~AddressTable() {
  if (slots_) ::munmap(slots_, total() * sizeof(Slot));
}

template <size_t N>
size_t AddressTable<N>::home(const uint8_t* addr) const {
  uint64_t a = 0, b = 0;
  std::memcpy(&a, addr, N < 8 ? N : 8);
  if (N > 8) std::memcpy(&b, addr + 8, N - 8);
  // A multiply-xorshift mix (splitmix64's finaliser) of the two halves.
  uint64_t h = a * 0x9e3779b97f4a7c15ull ^ b * 0xc2b2ae3d27d4eb4full;
  h ^= h >> 31;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 29;
  return static_cast<size_t>(h) & (size_ - 1);
}

// The first free slot from the address's home, or the spill list past the end.
template <size_t N>
void AddressTable<N>::place(const Slot& s) {
  for (size_t i = home(s.addr); i < total(); i++) {
    if (slots_[i].count == 0) {
      slots_[i] = s;
      return;
    }
  }
  spill_.push_back(s);
}

// Doubles the table in place. mremap() extends the mapping (the new pages read as zeros) and
// moves it if it must, without copying page contents. Then, with no wraparound to worry
// about: (1) the overflow slots are emptied into a list, which leaves every entry of the main
// region on a valid probe path; (2) the main region's entries are taken out and placed again
// in index order. An entry whose new home is its old one lands at or before its old slot,
// past entries already placed; one whose new home is in the new upper half probes only
// slots that were empty or hold entries already placed. No placed entry moves again, so
// every probe path stays whole. (3) The listed ones are placed last.
template <size_t N>
bool AddressTable<N>::grow(MemoryBudget& budget) {
  const size_t oldSize = size_, oldTotal = total();
  const size_t newSize = size_ ? size_ * 2 : 1024, newTotal = newSize + kSlack;
  const size_t oldBytes = oldTotal * sizeof(Slot), newBytes = newTotal * sizeof(Slot);
  if (!budget.take(newBytes - oldBytes)) return false;
  void* p =
      slots_ ? ::mremap(slots_, oldBytes, newBytes, MREMAP_MAYMOVE) : ::mmap(nullptr, newBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    budget.give(newBytes - oldBytes);
    return false;
  }
  slots_ = static_cast<Slot*>(p);
  size_ = newSize;
  std::vector<Slot> later;
  later.swap(spill_);
  for (size_t i = oldSize; i < oldTotal; i++) {
    if (slots_[i].count == 0) continue;
    later.push_back(slots_[i]);
    slots_[i].count = 0;
  }
  for (size_t i = 0; i < oldSize; i++) {
    if (slots_[i].count == 0) continue;
    const Slot s = slots_[i];
    slots_[i].count = 0;
    place(s);
  }
  for (const Slot& s : later) place(s);
  return true;
}

template <size_t N>
bool AddressTable<N>::add(const uint8_t* addr, MemoryBudget& budget) {
  // At most 70% full, and a spill list that stays short: probing stays short.
  if (((used_ + 1) * 10 > size_ * 7 || spill_.size() > kMaxSpill) && !grow(budget)) return false;
  for (size_t i = home(addr); i < total(); i++) {
    Slot& s = slots_[i];
    if (s.count == 0) {
      std::memcpy(s.addr, addr, N);
      s.count = 1;
      used_++;
      return true;
    }
    if (std::memcmp(s.addr, addr, N) == 0) {
      s.count++;
      return true;
    }
  }
  for (Slot& s : spill_) {
    if (std::memcmp(s.addr, addr, N) == 0) {
      s.count++;
      return true;
    }
  }
  Slot s{};
  std::memcpy(s.addr, addr, N);
  s.count = 1;
  spill_.push_back(s);
  used_++;
  return true;
}

template <size_t N>
uint32_t AddressTable<N>::find(const uint8_t* addr) const {
  if (!slots_) return 0;
  for (size_t i = home(addr); i < total(); i++) {
    const Slot& s = slots_[i];
    if (s.count == 0) return 0;
    if (std::memcmp(s.addr, addr, N) == 0) return s.count;
  }
  for (const Slot& s : spill_) {
    if (std::memcmp(s.addr, addr, N) == 0) return s.count;
  }
  return 0;
}

template <size_t N>
void AddressTable<N>::release(MemoryBudget& budget) {
  if (slots_) {
    budget.give(total() * sizeof(Slot));
    ::munmap(slots_, total() * sizeof(Slot));
  }
  slots_ = nullptr;
  size_ = used_ = 0;
  std::vector<Slot>().swap(spill_);
}

template class AddressTable<4>;
template class AddressTable<16>;

void TalkerCounts::add(uint8_t family, const uint8_t* addr) {
  if (!fellBack_) {
    if (family == AF_INET ? v4_.add(addr, *budget_) : v6_.add(addr, *budget_)) return;
    fallBack();
  }
  heavy_.add(AddressKey::of(family, addr));
}

uint32_t TalkerCounts::find(const AddressKey& k) const { return k.family == AF_INET ? v4_.find(k.addr) : v6_.find(k.addr); }

void TalkerCounts::fallBack() {
  if (fellBack_) return;
  fellBack_ = true;
  forEach([&](const AddressKey& k, uint32_t count) { heavy_.seed(k, count); });
  release();
}

void TalkerCounts::release() {
  v4_.release(*budget_);
  v6_.release(*budget_);
}

}  // namespace ctpurge

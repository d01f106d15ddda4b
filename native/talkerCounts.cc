#include "talkerCounts.h"

#include <netinet/in.h>

namespace ctpurge {

bool MemoryBudget::take(size_t bytes) {
  if (left_.fetch_sub(static_cast<int64_t>(bytes)) >= static_cast<int64_t>(bytes)) return true;
  give(bytes);
  return false;
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
  return static_cast<size_t>(h) & (slots_.size() - 1);
}

template <size_t N>
bool AddressTable<N>::grow(MemoryBudget& budget) {
  const size_t size = slots_.empty() ? 1024 : slots_.size() * 2;
  if (!budget.take(size * sizeof(Slot))) return false;
  std::vector<Slot> old(size, Slot{});
  old.swap(slots_);
  for (const Slot& s : old) {
    if (s.count == 0) continue;
    size_t i = home(s.addr);
    while (slots_[i].count != 0) i = (i + 1) & (size - 1);
    slots_[i] = s;
  }
  budget.give(old.size() * sizeof(Slot));
  return true;
}

template <size_t N>
bool AddressTable<N>::add(const uint8_t* addr, MemoryBudget& budget) {
  // At most 70% full: linear probing stays short.
  if ((used_ + 1) * 10 > slots_.size() * 7 && !grow(budget)) return false;
  const size_t mask = slots_.size() - 1;
  for (size_t i = home(addr);; i = (i + 1) & mask) {
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
}

template <size_t N>
uint32_t AddressTable<N>::find(const uint8_t* addr) const {
  if (slots_.empty()) return 0;
  const size_t mask = slots_.size() - 1;
  for (size_t i = home(addr);; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.count == 0) return 0;
    if (std::memcmp(s.addr, addr, N) == 0) return s.count;
  }
}

template <size_t N>
void AddressTable<N>::release(MemoryBudget& budget) {
  budget.give(slots_.size() * sizeof(Slot));
  std::vector<Slot>().swap(slots_);
  used_ = 0;
}

template class AddressTable<4>;
template class AddressTable<16>;

void TalkerCounts::add(uint8_t family, const uint8_t* addr) {
  if (!fellBack_) {
    if (family == AF_INET ? v4_.add(addr, *budget_) : v6_.add(addr, *budget_)) return;
    fallBack();
  }
  AddressKey k;
  k.family = family;
  std::memcpy(k.addr, addr, 16);
  heavy_.add(k);
}

uint32_t TalkerCounts::find(const AddressKey& k) const {
  return k.family == AF_INET ? v4_.find(k.addr) : v6_.find(k.addr);
}

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

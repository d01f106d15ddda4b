// Splitting one dump into per-family lanes that run on their own threads. A kernel dump
// costs mostly the kernel's per-entry work in the reading thread; with one socket per
// family, that work spreads over the CPUs.
#pragma once
#include <optional>
#include <thread>
#include <vector>

#include "filter.h"
#include "sysError.h"

namespace ctpurge {

// One filter per lane: per family when the query names none and kernel filters are on,
// otherwise the filter itself.
std::vector<Filter> splitByFamily(const Filter& f);

// Runs fn(i) for every lane, lane 0 on the calling thread, and rethrows the first lane's
// SysError after all have finished. onError(i) runs as soon as a lane fails (to stop the
// others early).
template <typename Fn, typename OnError>
void runLanes(size_t n, Fn&& fn, OnError&& onError) {
  std::vector<std::optional<SysError>> errors(n);
  auto one = [&](size_t i) {
    try {
      fn(i);
    } catch (const SysError& e) {
      errors[i] = e;
      onError(i);
    }
  };
  std::vector<std::thread> threads;
  for (size_t i = 1; i < n; i++) threads.emplace_back(one, i);
  one(0);
  for (std::thread& t : threads) t.join();
  for (const auto& e : errors) {
    if (e) throw *e;
  }
}

}  // namespace ctpurge

// Running one dump as several lanes on their own threads. A kernel dump costs mostly the
// kernel's per-entry work in the reading thread; with one socket per lane, each asking the
// kernel for a disjoint part (by family, or by reply status), that work spreads over the CPUs.
#pragma once
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <exception>
#include <thread>
#include <vector>

#include "cancelFlag.h"
#include "dumpReader.h"
#include "filter.h"
#include "sysError.h"

namespace ctpurge {

// Runs fn(i) for every lane, lane 0 on the calling thread, and rethrows the first lane's
// exception after all have finished (an exception escaping a std::thread would terminate
// the process). onError(i) runs as soon as a lane fails, to stop the others early.
template <typename Fn, typename OnError>
void runLanes(size_t n, Fn&& fn, OnError&& onError) {
  std::vector<std::exception_ptr> errors(n);
  auto one = [&](size_t i) {
    try {
      fn(i);
    } catch (...) {
      errors[i] = std::current_exception();
      onError(i);
    }
  };
  std::vector<std::thread> threads;
  for (size_t i = 1; i < n; i++) {
    threads.emplace_back([&one, i] {
      // Helper lanes yield to everything else on the machine, the embedding process's
      // event loop first: on a 2-CPU host, two busy lanes would otherwise starve it.
      setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 10);
      one(i);
    });
  }
  one(0);
  for (std::thread& t : threads) t.join();
  for (const std::exception_ptr& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

// Dumps every lane on its own thread (runLanes), the kernel filtering by the lane's kernel
// filter, and calls fn(lane, entry, ages) for each entry its match filter takes. Ages are
// estimated when the filter needs them or withAges is set. A failing lane stops the others
// after their current read; so does a cancel (*cancel set by JS through a SharedArrayBuffer).
// Returns false when cancelled.
template <typename Fn>
bool scanLanes(int nsFd, const std::vector<Lane>& lanes, const char* operation, const PolicyTimeouts& timeouts, uint64_t nowNs, bool withAges,
               const int32_t* cancel, Fn&& fn) {
  std::atomic<bool> failed{false};
  runLanes(
      lanes.size(),
      [&](size_t i) {
        const Filter& f = lanes[i].match;
        const bool ages = withAges || f.needsAge();
        DumpReader reader(nsFd, lanes[i], operation);
        while (!failed.load() && !cancelRequested(cancel) && reader.next([&](const Entry& e) {
          const Ages a = ages ? estimateAges(e, timeouts, nowNs) : Ages{};
          if (f.matches(e, a)) fn(i, e, a);
        })) {}
      },
      [&](size_t) { failed.store(true); });
  return !cancelRequested(cancel);
}

}  // namespace ctpurge

// One dump-match-delete pass over part of the table (a family, or a reply status), run on
// its own thread: the purge worker runs its lanes at once so the kernel's dump work, which is
// most of the cost, uses both CPUs. With grace, the matches get a timeout update instead.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cancelFlag.h"
#include "filter.h"
#include "lineSink.h"
#include "netlinkSocket.h"
#include "policyTimeouts.h"

namespace ctpurge {

struct PurgeCounts {
  double scanned = 0, matched = 0, deleted = 0, vanished = 0, batches = 0;
  // --grace: entries given the short timeout, and matches left as they are: a fixed timeout
  // (the kernel refuses it), offloaded (the kernel's gc rewrites it), or due to expire sooner.
  double graced = 0, fixedTimeout = 0, offloaded = 0, expiring = 0;
  bool flushed = false, cancelled = false, limitReached = false;
  double lostReports = 0;
  double logged = 0;  // audit lines written (write-ahead: before their batch is deleted)
  int logErrno = 0;   // the audit log failed with this errno: the purge stopped before the next delete

  void add(const PurgeCounts& o);
};

// What all lanes of one purge share.
struct PurgeShared {
  int nsFd = -1;
  bool dryRun = false;
  double limit = -1;           // < 0: no limit
  uint32_t grace = 0;          // > 0: give each match this many seconds (a timeout update) instead of deleting it
  bool collectGraced = false;  // keep the ids of the graced entries (to count later which expired)
  bool wantEntries = false;
  const int32_t* cancel = nullptr;  // JS sets it through a SharedArrayBuffer
  PolicyTimeouts timeouts;
  uint64_t nowNs = 0;
  std::atomic<int64_t> requested{0};  // delete requests issued (or matches, in a dry run), for limit
  std::atomic<bool> abort{false};     // set when another lane failed
  // Write-ahead audit log (absent: none): the NDJSON lines of a batch are written before the
  // batch is sent, and once a write fails no lane sends another delete. A dry run writes the
  // lines of what it would delete.
  LineSink* log = nullptr;
  // Set for an audit log: its lines are stamped with it (see stampNdjson).
  std::optional<std::string> logTag;

  bool cancelled() const { return abort.load() || cancelRequested(cancel); }
};

class PurgeLane {
 public:
  // report(counts so far, records of deleted entries since the last report)
  using Report = std::function<void(const PurgeCounts&, std::vector<uint8_t>&&)>;

  PurgeLane(Lane lane, PurgeShared& shared) : lane_(std::move(lane)), shared_(shared) {}
  void run(const Report& report);
  const PurgeCounts& counts() const { return counts_; }
  std::vector<uint32_t>& gracedIds() { return gracedIds_; }

 private:
  bool sendBatch();  // false: the audit log failed, the batch was dropped unsent
  void dropBatch();  // forgets the batch being built (and, unless a dry run, its audit lines)
  // Writes logBuf_ whole, or records the failure (every lane stops deleting) and returns false.
  bool writeLog();

  Lane lane_;
  PurgeShared& shared_;
  PurgeCounts counts_;
  std::optional<NetlinkSocket> del_;
  size_t batchLimit_ = 0;
  size_t lastMsgOffset_ = 0;
  std::vector<char> batch_;
  std::vector<uint32_t> batchSeqs_;
  std::vector<uint32_t> batchIds_;  // with collectGraced: the entry id of each request
  std::vector<uint32_t> gracedIds_;
  std::vector<uint32_t> refusedSeqs_;  // grace: EPERM (the timeout became fixed since the dump)
  std::vector<uint8_t> batchRecords_;
  std::vector<uint8_t> pending_;
  std::vector<uint32_t> vanishedSeqs_;
  std::vector<char> replyBuf_;
  std::string logBuf_;  // audit lines of the entries in batch_ (or, in a dry run, matched)
  double logLines_ = 0;
};

}  // namespace ctpurge

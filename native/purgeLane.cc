#include "purgeLane.h"

#include <algorithm>
#include <chrono>

#include "ctRequest.h"
#include "dumpReader.h"
#include "entryRecord.h"
#include "entryText.h"

namespace ctpurge {
namespace {

using Clock = std::chrono::steady_clock;

// Each batch must fit the socket's send buffer (EMSGSIZE otherwise); 256 KiB holds
// about 2,500 deletes, which is plenty to amortise the syscall.
constexpr size_t kMaxBatchBytes = 256 * 1024;
// Error replies for a whole batch must fit the receive buffer, or the kernel drops them.
constexpr int kDeleteRcvBuf = 16 * 1024 * 1024;
constexpr int kDeleteSndBuf = 1024 * 1024;
constexpr size_t kRecordsPerReport = 2048;
constexpr uint32_t kIpsFixedTimeout = 1u << 10;  // IPS_FIXED_TIMEOUT
constexpr uint32_t kIpsOffload = 1u << 14;       // IPS_OFFLOAD

}  // namespace

void PurgeCounts::add(const PurgeCounts& o) {
  scanned += o.scanned;
  matched += o.matched;
  deleted += o.deleted;
  vanished += o.vanished;
  batches += o.batches;
  graced += o.graced;
  fixedTimeout += o.fixedTimeout;
  offloaded += o.offloaded;
  expiring += o.expiring;
  lostReports += o.lostReports;
  logged += o.logged;
  if (logErrno == 0) logErrno = o.logErrno;
  flushed = flushed || o.flushed;
  cancelled = cancelled || o.cancelled;
  limitReached = limitReached || o.limitReached;
}

void PurgeLane::run(const Report& report) {
  DumpReader reader(shared_.nsFd, lane_, "purge");
  if (!shared_.dryRun) {
    del_.emplace(NetlinkSocket::open(shared_.nsFd, "delete"));
    del_->setReceiveBuffer(kDeleteRcvBuf);
    del_->setSendBuffer(kDeleteSndBuf);
    del_->capAcks();
    const int sndbuf = del_->sendBufferSize();
    batchLimit_ = std::min(kMaxBatchBytes, static_cast<size_t>(sndbuf > 8192 ? sndbuf - 4096 : 4096));
    batch_.reserve(batchLimit_ + 512);
    replyBuf_.resize(256 * 1024);
  }
  const bool logging = shared_.log != nullptr;
  const bool needAge = lane_.match.needsAge() || shared_.wantEntries || logging;
  const bool limited = shared_.limit >= 0;
  // stop: read no further (limit, cancel, failure). failed: the audit log could not be
  // written, so nothing more may be deleted, not even the batch already built. A limit still
  // sends (and logs) what was matched before it; after a cancel no batch is sent (its entries
  // were matched, not deleted), while a dry run's lines in flight are still written.
  bool stop = false;
  bool failed = false;
  auto cancelledNow = [&] {
    if (!shared_.cancelled()) return false;
    counts_.cancelled = true;
    stop = true;
    dropBatch();
    return true;
  };
  auto lastReport = Clock::now();
  bool more = true;
  while (more && !stop) {
    more = reader.next([&](const Entry& e) {
      if (stop) return;
      counts_.scanned++;
      const Ages ages = needAge ? estimateAges(e, shared_.timeouts, shared_.nowNs) : Ages{};
      if (!lane_.match.matches(e, ages)) return;
      // A timeout update the kernel would refuse (a fixed timeout), that its gc would undo
      // (offloaded), or that would lengthen the entry's life: counted, left as it is.
      if (shared_.grace > 0) {
        if (e.status & kIpsFixedTimeout) {
          counts_.matched++;
          counts_.fixedTimeout++;
          return;
        }
        if (e.status & kIpsOffload) {
          counts_.matched++;
          counts_.offloaded++;
          return;
        }
        if (e.hasTimeout && e.timeout <= shared_.grace) {
          counts_.matched++;
          counts_.expiring++;
          return;
        }
      }
      if (limited && shared_.requested.fetch_add(1) >= static_cast<int64_t>(shared_.limit)) {
        counts_.limitReached = true;
        stop = true;
        return;
      }
      counts_.matched++;
      if (shared_.dryRun) {
        if (shared_.wantEntries) appendRecord(pending_, e, ages);
        if (logging) {
          appendNdjson(logBuf_, e, ages);
          if (shared_.logTag) stampNdjson(logBuf_, *shared_.logTag);
          logLines_++;
          if (logBuf_.size() >= kMaxBatchBytes && !writeLog()) failed = stop = true;
        }
        return;
      }
      if (!batch_.empty() && batch_.size() + entryRequestSize(e) > batchLimit_) {
        if (cancelledNow()) return;
        if (!sendBatch()) {
          failed = stop = true;
          return;
        }
      }
      const size_t offset = batch_.size();
      const uint32_t seq = del_->nextSeq();
      const bool appended = shared_.grace > 0 ? appendEntryRequest(batch_, e, seq, EntryRequest::Timeout, shared_.grace)
                                              : appendEntryRequest(batch_, e, seq, EntryRequest::Delete);
      if (!appended) return;
      lastMsgOffset_ = offset;
      batchSeqs_.push_back(seq);
      if (shared_.collectGraced) batchIds_.push_back(e.id);
      if (shared_.wantEntries) appendRecord(batchRecords_, e, ages);
      if (logging) {
        appendNdjson(logBuf_, e, ages);
        if (shared_.logTag) stampNdjson(logBuf_, *shared_.logTag);
        logLines_++;
      }
    });
    // Deletes go out after every dump buffer: an entry is deleted milliseconds after it
    // was read, while the dump carries on.
    if (!shared_.dryRun) cancelledNow();
    if (!failed && !batch_.empty() && !sendBatch()) failed = stop = true;
    if (!failed && logging && shared_.dryRun && !writeLog()) failed = stop = true;
    if (logging && shared_.log->failed()) stop = true;
    if (shared_.cancelled()) {
      counts_.cancelled = true;
      stop = true;
    }
    if (pending_.size() >= kRecordsPerReport * kRecordSize || Clock::now() - lastReport > std::chrono::milliseconds(200)) {
      report(counts_, std::move(pending_));
      pending_.clear();
      lastReport = Clock::now();
    }
  }
  report(counts_, std::move(pending_));
  pending_.clear();
}

bool PurgeLane::writeLog() {
  if (!shared_.log->write(logBuf_)) {
    counts_.logErrno = shared_.log->error();
    return false;
  }
  counts_.logged += logLines_;
  logLines_ = 0;
  return true;
}

void PurgeLane::dropBatch() {
  batch_.clear();
  batchSeqs_.clear();
  batchIds_.clear();
  batchRecords_.clear();
  if (!shared_.dryRun) {  // the audit lines of the dropped deletes (a dry run's lines stay)
    logBuf_.clear();
    logLines_ = 0;
  }
}

bool PurgeLane::sendBatch() {
  if (shared_.log != nullptr && !writeLog()) {
    dropBatch();  // a delete batch: its audit lines go with it
    return false;
  }
  auto* last = reinterpret_cast<nlmsghdr*>(batch_.data() + lastMsgOffset_);
  // Only the last message asks for an ACK: it is the barrier that tells us the kernel has
  // processed (and answered errors for) everything before it. The kernel handles a batch
  // synchronously inside sendmsg, so every reply is queued by the time it returns.
  last->nlmsg_flags |= NLM_F_ACK;
  const uint32_t ackSeq = last->nlmsg_seq;
  del_->send(batch_.data(), batch_.size(), "delete");
  counts_.batches++;
  vanishedSeqs_.clear();
  refusedSeqs_.clear();
  bool acked = false;
  while (!acked) {
    size_t n = 0;
    try {
      n = del_->receive(replyBuf_.data(), replyBuf_.size(), "delete");
    } catch (const SysError& e) {
      // ENOBUFS: the kernel dropped replies. The deletes still happened; we just can't tell
      // which of them were "already gone". Say so instead of guessing.
      if (e.errnum != ENOBUFS) throw;
      counts_.lostReports++;
      break;
    }
    int len = static_cast<int>(n);
    for (const nlmsghdr* m = reinterpret_cast<const nlmsghdr*>(replyBuf_.data()); mnl_nlmsg_ok(m, len); m = mnl_nlmsg_next(m, &len)) {
      if (m->nlmsg_type != NLMSG_ERROR) continue;
      const int err = -static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m))->error;
      // Gone since the dump; for an update also dying (ETIME). An update refused with EPERM:
      // the entry's timeout became fixed since it was read.
      if (err == ENOENT || (shared_.grace > 0 && err == ETIME))
        vanishedSeqs_.push_back(m->nlmsg_seq);
      else if (shared_.grace > 0 && err == EPERM)
        refusedSeqs_.push_back(m->nlmsg_seq);
      else if (err != 0)
        throwErrno("sendmsg", shared_.grace > 0 ? "grace" : "delete", err);
      if (m->nlmsg_seq == ackSeq) acked = true;
    }
  }
  const double vanished = static_cast<double>(vanishedSeqs_.size());
  const double refused = static_cast<double>(refusedSeqs_.size());
  counts_.vanished += vanished;
  counts_.fixedTimeout += refused;
  const double done = static_cast<double>(batchSeqs_.size()) - vanished - refused;
  if (shared_.grace > 0)
    counts_.graced += done;
  else
    counts_.deleted += done;
  if (shared_.wantEntries || shared_.collectGraced) {
    size_t v = 0, r = 0;
    for (size_t i = 0; i < batchSeqs_.size(); i++) {
      // The lists are in sequence order: the kernel answers in the order it processes.
      if (v < vanishedSeqs_.size() && vanishedSeqs_[v] == batchSeqs_[i]) {
        v++;
        continue;
      }
      if (r < refusedSeqs_.size() && refusedSeqs_[r] == batchSeqs_[i]) {
        r++;
        continue;
      }
      if (shared_.collectGraced) gracedIds_.push_back(batchIds_[i]);
      if (shared_.wantEntries) {
        pending_.insert(pending_.end(), batchRecords_.begin() + static_cast<long>(i * kRecordSize),
                        batchRecords_.begin() + static_cast<long>((i + 1) * kRecordSize));
      }
    }
  }
  batch_.clear();
  batchSeqs_.clear();
  batchIds_.clear();
  batchRecords_.clear();
  return true;
}

}  // namespace ctpurge

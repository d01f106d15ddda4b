#include "dumpReader.h"

#include <system_error>

#include "ctRequest.h"

namespace ctpurge {

namespace {
// The kernel sizes each dump message batch to the receive buffer we used last (capped at
// 32 KiB on current kernels); 64 KiB leaves room and never truncates.
constexpr size_t kDumpBufferSize = 64 * 1024;
}  // namespace

DumpReader::DumpReader(int nsFd, const Lane& lane, const char* operation) : sock_(NetlinkSocket::open(nsFd, operation)), operation_(operation) {
  sock_.setReceiveBuffer(4 * 1024 * 1024);
  seq_ = sock_.nextSeq();
  char req[MNL_SOCKET_BUFFER_SIZE] = {};
  nlmsghdr* nlh = buildDumpRequest(req, seq_, lane.kernel);
  sock_.send(nlh, nlh->nlmsg_len, operation_);
  if (!lane.readAhead) {
    own_.data.resize(kDumpBufferSize);
    return;
  }
  slots_.resize(kReadAheadBuffers);
  for (Buffer& b : slots_) {
    b.data.resize(kDumpBufferSize);
    free_.push_back(&b);
  }
  // The thread keeps the priority of the lane it reads for (a new thread inherits its creator's
  // nice value): the kernel's dump work is the purge's critical path, as it was in the lane.
  reader_ = std::thread([this] { readAheadLoop(); });
}

void DumpReader::discard(std::unique_ptr<DumpReader> reader) {
  if (!reader || !reader->reader_.joinable()) return;  // nothing to wait for: destroyed here
  {
    std::lock_guard<std::mutex> g(reader->mu_);
    if (reader->readerEnded_) return;  // the thread is ending on its own: joined here at once
    reader->stop_ = true;
  }
  reader->cv_.notify_all();
  try {
    std::thread([](std::unique_ptr<DumpReader> r) { r.reset(); }, std::move(reader)).detach();
  } catch (const std::system_error&) {
    // No thread to be had: the reader, destroyed with the failed thread's arguments, was joined here.
  }
}

DumpReader::~DumpReader() {
  if (!reader_.joinable()) return;
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  reader_.join();
}

bool DumpReader::endsDump(const Buffer& b) const {
  int len = static_cast<int>(b.size);
  for (const nlmsghdr* m = reinterpret_cast<const nlmsghdr*>(b.data.data()); mnl_nlmsg_ok(m, len); m = mnl_nlmsg_next(m, &len)) {
    if (m->nlmsg_seq == seq_ && (m->nlmsg_type == NLMSG_DONE || m->nlmsg_type == NLMSG_ERROR)) return true;
  }
  return false;
}

void DumpReader::readAheadLoop() {
  for (;;) {
    Buffer* b = nullptr;
    {
      std::unique_lock<std::mutex> g(mu_);
      cv_.wait(g, [&] { return stop_ || !free_.empty(); });
      if (stop_) return;
      b = free_.back();
      free_.pop_back();
    }
    bool last = false;
    std::exception_ptr error;
    try {
      b->size = sock_.receive(b->data.data(), b->data.size(), operation_);
      last = endsDump(*b);
    } catch (...) { error = std::current_exception(); }
    {
      std::lock_guard<std::mutex> g(mu_);
      if (error) {
        free_.push_back(b);
        readerError_ = error;
      } else {
        filled_.push_back(b);
      }
      readerEnded_ = last || error != nullptr;
    }
    cv_.notify_all();
    if (last || error) return;
  }
}

DumpReader::Buffer* DumpReader::take() {
  if (!reader_.joinable()) {
    own_.size = sock_.receive(own_.data.data(), own_.data.size(), operation_);
    return &own_;
  }
  std::unique_lock<std::mutex> g(mu_);
  cv_.wait(g, [&] { return !filled_.empty() || readerEnded_; });
  if (filled_.empty()) {
    // Ended with nothing left to parse: the reader failed (a dump that ends has its DONE in a
    // buffer, which next() reads before asking again).
    done_ = true;
    if (readerError_) std::rethrow_exception(readerError_);
    throwErrno("recvmsg", operation_, EIO);
  }
  Buffer* b = filled_.front();
  filled_.pop_front();
  return b;
}

void DumpReader::giveBack(Buffer* b) {
  if (!reader_.joinable()) return;
  {
    std::lock_guard<std::mutex> g(mu_);
    free_.push_back(b);
  }
  cv_.notify_all();
}

}  // namespace ctpurge

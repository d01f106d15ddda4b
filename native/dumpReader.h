// One ctnetlink dump, read buffer by buffer. The kernel does its dump work (walking the table,
// building the messages) inside the recvmsg() that asks for the next buffer, in the thread
// that calls it: a reader that reads ahead calls it on a thread of its own, a few buffers ahead of
// the thread that parses, matches and deletes, so that both run at once on different CPUs.
#pragma once
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "ctMessage.h"
#include "filter.h"
#include "netlinkSocket.h"
#include "sysError.h"

namespace ctpurge {

class DumpReader {
 public:
  // Opens its own socket in the namespace and sends the lane's dump request. With the lane's
  // readAhead, a reader thread receives up to kReadAheadBuffers buffers ahead of next().
  DumpReader(int nsFd, const Lane& lane, const char* operation);
  // Stops the reader thread (after the recvmsg it is in, which the kernel answers at once while
  // a dump is open) and joins it.
  ~DumpReader();
  // Destroys a reader without waiting on the calling thread (the JS thread, for a cursor closed
  // early): a reader thread still reading is told to stop and joined on a short-lived thread of
  // its own, for the recvmsg it is in can walk much of a large table on a filtered dump.
  static void discard(std::unique_ptr<DumpReader> reader);
  DumpReader(const DumpReader&) = delete;
  DumpReader& operator=(const DumpReader&) = delete;

  // Takes the next buffer from the kernel (or the reader thread) and calls fn(const Entry&)
  // for every entry in it. Returns false once the dump is complete. The kernel produces the
  // next part of the dump only when asked for it, so memory stays bounded (at most
  // kReadAheadBuffers buffers ahead) whatever the table size.
  template <typename Fn>
  bool next(Fn&& fn) {
    if (done_) return false;
    Buffer* b = take();
    int len = static_cast<int>(b->size);
    Entry e;
    for (const nlmsghdr* m = reinterpret_cast<const nlmsghdr*>(b->data.data()); mnl_nlmsg_ok(m, len); m = mnl_nlmsg_next(m, &len)) {
      if (m->nlmsg_seq != seq_) continue;
      if (m->nlmsg_type == NLMSG_DONE) {
        done_ = true;
        break;
      }
      if (m->nlmsg_type == NLMSG_ERROR) {
        const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m));
        done_ = true;
        if (err->error != 0) {
          giveBack(b);
          throwErrno("recvmsg", operation_, -err->error);
        }
        break;
      }
      if (parseEntry(m, e)) fn(static_cast<const Entry&>(e));
    }
    giveBack(b);
    return !done_;
  }

  bool done() const { return done_; }

  // Buffers a reading-ahead reader keeps at most (received and not yet parsed, or being parsed):
  // 512 KiB a lane. Measured on 1M entries, the parsing thread waited for the reader at 97% of
  // its buffers: the queue is rarely full, and more would only hold memory.
  static constexpr size_t kReadAheadBuffers = 8;

 private:
  struct Buffer {
    std::vector<char> data;
    size_t size = 0;
  };
  Buffer* take();
  void giveBack(Buffer* b);
  void readAheadLoop();
  bool endsDump(const Buffer& b) const;  // holds this dump's DONE or ERROR

  NetlinkSocket sock_;
  uint32_t seq_ = 0;
  bool done_ = false;
  const char* operation_;

  // Without read-ahead: the one buffer, received in take().
  Buffer own_;
  // With read-ahead: buffers in the order received, and the free ones.
  std::vector<Buffer> slots_;
  std::vector<Buffer*> free_;
  std::deque<Buffer*> filled_;  // the reader appends, take() removes the front
  bool readerEnded_ = false;    // the reader received the end of the dump, or failed
  std::exception_ptr readerError_;
  bool stop_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread reader_;
};

}  // namespace ctpurge

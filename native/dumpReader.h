// One ctnetlink dump, read buffer by buffer on the calling (worker) thread.
#pragma once
#include <vector>

#include "ctMessage.h"
#include "netlinkSocket.h"
#include "sysError.h"

namespace ctpurge {

class DumpReader {
 public:
  // Opens its own socket in the namespace and sends the dump request.
  DumpReader(int nsFd, const KernelFilter& filter, const char* operation);

  // Receives one buffer from the kernel and calls fn(const Entry&) for every entry in it.
  // Returns false once the dump is complete. The kernel produces the next part of the
  // dump only when we ask for it, so memory stays bounded whatever the table size.
  template <typename Fn>
  bool next(Fn&& fn) {
    if (done_) return false;
    const size_t n = sock_.receive(buf_.data(), buf_.size(), operation_);
    int len = static_cast<int>(n);
    Entry e;
    for (const nlmsghdr* m = reinterpret_cast<const nlmsghdr*>(buf_.data()); mnl_nlmsg_ok(m, len); m = mnl_nlmsg_next(m, &len)) {
      if (m->nlmsg_seq != seq_) continue;
      if (m->nlmsg_type == NLMSG_DONE) {
        done_ = true;
        break;
      }
      if (m->nlmsg_type == NLMSG_ERROR) {
        const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m));
        done_ = true;
        if (err->error != 0) throwErrno("recvmsg", operation_, -err->error);
        break;
      }
      if (parseEntry(m, e)) fn(static_cast<const Entry&>(e));
    }
    return !done_;
  }

  bool done() const { return done_; }

 private:
  NetlinkSocket sock_;
  std::vector<char> buf_;
  uint32_t seq_ = 0;
  bool done_ = false;
  const char* operation_;
};

}  // namespace ctpurge

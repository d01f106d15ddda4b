#include "lineSink.h"

#include <cerrno>

#include <poll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ctpurge {
namespace {

// An exclusive flock(2) on the file for one write, released when it goes out of scope. It
// waits up to kFileLockWaitMs for another writer's batch (milliseconds, normally); a holder
// that keeps it longer fails the write (EWOULDBLOCK), which stops a purge before its next delete.
constexpr int kFileLockWaitMs = 10000;

class FileWriteLock {
 public:
  explicit FileWriteLock(int fd) : fd_(fd) {
    if (fd_ < 0) return;
    for (int waited = 0;; waited += 5) {
      if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) {
        held_ = true;
        return;
      }
      if (errno == EINTR) continue;
      if (errno != EWOULDBLOCK || waited >= kFileLockWaitMs) {
        error_ = errno;
        return;
      }
      ::usleep(5000);
    }
  }
  ~FileWriteLock() {
    if (held_) ::flock(fd_, LOCK_UN);
  }
  FileWriteLock(const FileWriteLock&) = delete;
  FileWriteLock& operator=(const FileWriteLock&) = delete;
  bool held() const { return held_; }
  int error() const { return error_; }

 private:
  int fd_;
  bool held_ = false;
  int error_ = 0;
};

}  // namespace

bool LineSink::write(std::string& text, const std::function<void(std::string&)>& compose) {
  if (text.empty() && !compose) return !failed();
  std::lock_guard<std::mutex> g(mutex_);
  if (failed()) return false;  // another lane's write failed: stop too
  if (compose) compose(text);
  if (text.empty()) return true;
  // A failed write is cut back to the last whole line, so an NDJSON log stays valid. Other
  // ctpurge processes may append to the same file (cron jobs, ctpurge@ instances): the file
  // is locked (flock) from the size read to the cut-back, so the cut removes only our bytes.
  struct stat st {};
  const bool regular = ::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode);
  FileWriteLock fileLock(regular ? fd_ : -1);
  if (regular && !fileLock.held()) return fail(fileLock.error());
  const off_t before = regular && ::fstat(fd_, &st) == 0 ? st.st_size : 0;
  const char* p = text.data();
  size_t left = text.size();
  while (left > 0) {
    const ssize_t n = ::write(fd_, p, left);
    if (n > 0) {
      p += n;
      left -= static_cast<size_t>(n);
      continue;
    }
    const int err = n == 0 ? EIO : errno;
    if (err == EINTR) continue;
    if (err == EAGAIN) {  // a non-blocking pipe (--log -): wait until the reader takes more
      pollfd pfd{fd_, POLLOUT, 0};
      if (::poll(&pfd, 1, 200) >= 0 && !cancelled_()) continue;
    }
    if (regular) {
      int ignored = ::ftruncate(fd_, before);
      (void)ignored;
    }
    return fail(err);
  }
  text.clear();
  return true;
}

bool LineSink::fail(int err) {
  errno_.store(err);
  return false;
}

}  // namespace ctpurge

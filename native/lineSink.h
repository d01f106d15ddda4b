// Text written whole to one descriptor by the lanes of one run: the purge's write-ahead audit
// log and the list export. Lanes take turns; a failed write is cut back to what was there
// before it, and from then on every lane's write fails (the purge sends no delete after it).
#pragma once
#include <atomic>
#include <functional>
#include <mutex>
#include <string>

namespace ctpurge {

class LineSink {
 public:
  // cancelled: asked while a full pipe makes the writer wait (a cancelled run stops waiting).
  LineSink(int fd, std::function<bool()> cancelled) : fd_(fd), cancelled_(std::move(cancelled)) {}
  LineSink(const LineSink&) = delete;
  LineSink& operator=(const LineSink&) = delete;

  // Writes text whole and empties it; false (text kept) when this or an earlier write failed.
  // compose, when given, runs first under the lanes' lock and appends to text: what depends on
  // the other lanes' lines (the table's shared column widths) is laid out there.
  bool write(std::string& text, const std::function<void(std::string&)>& compose = nullptr);

  bool failed() const { return errno_.load() != 0; }
  int error() const { return errno_.load(); }

 private:
  bool fail(int err);

  const int fd_;
  const std::function<bool()> cancelled_;
  std::mutex mutex_;
  std::atomic<int> errno_{0};
};

}  // namespace ctpurge

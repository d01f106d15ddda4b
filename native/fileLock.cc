#include "fileLock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "jsConvert.h"

namespace ctpurge {
namespace {

class LockWorker : public PromiseWorker {
 public:
  LockWorker(Napi::Env env, std::string path, double waitMs)
      : PromiseWorker(env, "ctpurge:lock"), path_(std::move(path)), waitMs_(waitMs) {}

 protected:
  void Run() override {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd_ < 0) throw SysError::fromErrno(errno, "open", "lock", "cannot open lock file " + path_);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<long long>(waitMs_));
    for (;;) {
      if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) break;
      const int err = errno;
      if (err == EINTR) continue;
      if (err != EWOULDBLOCK) {
        ::close(fd_);
        throw SysError::fromErrno(err, "flock", "lock");
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        char buf[32] = {};
        ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
        holder_ = n > 0 ? std::strtol(buf, nullptr, 10) : 0;
        ::close(fd_);
        fd_ = -1;
        SysError e;
        e.operation = "lock";
        e.code = "ELOCKED";
        e.holderPid = holder_;
        e.message = "the lock is held by another process";
        throw e;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd_, 0) == 0) {
      ssize_t ignored = ::pwrite(fd_, pid.data(), pid.size(), 0);
      (void)ignored;
    }
  }

  Napi::Value Resolve(Napi::Env env) override { return Napi::Number::New(env, fd_); }

  long holder_ = -1;

 private:
  std::string path_;
  double waitMs_;
  int fd_ = -1;
};

}  // namespace

Napi::Value LockFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) throw Napi::TypeError::New(env, "lockFile(path, waitMs)");
  auto* w = new LockWorker(env, info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::Number>().DoubleValue());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value UnlockFile(const Napi::CallbackInfo& info) {
  if (info.Length() > 0 && info[0].IsNumber()) {
    const int fd = info[0].As<Napi::Number>().Int32Value();
    if (fd >= 0) ::close(fd);
  }
  return info.Env().Undefined();
}

}  // namespace ctpurge

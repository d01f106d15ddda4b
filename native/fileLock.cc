#include "fileLock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "jsConvert.h"

namespace ctpurge {
namespace {

// The pid a ctpurge wrote into the lock file, when /proc/locks confirms that this pid holds an
// flock on that very inode; 0 otherwise (the holder is then not named).
long confirmedHolder(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  const long pid = n > 0 ? std::strtol(buf, nullptr, 10) : 0;
  struct stat st {};
  if (pid <= 0 || ::fstat(fd, &st) != 0) return 0;
  std::ifstream locks("/proc/locks");
  std::string line;
  char dev[64];
  std::snprintf(dev, sizeof dev, "%02x:%02x:%llu", major(st.st_dev), minor(st.st_dev), static_cast<unsigned long long>(st.st_ino));
  while (std::getline(locks, line)) {
    std::istringstream in(line);
    std::string id, kind, mode, access, lockDev;
    long lockPid = 0;
    if (!(in >> id >> kind) || kind != "FLOCK") continue;
    if (!(in >> mode >> access >> lockPid >> lockDev)) continue;
    if (lockPid == pid && lockDev == dev) return pid;
  }
  return 0;
}

// Moves what sits at the lock's name out of the way (a file, a directory, a symlink: rename
// works for each, and for another user's entry wherever the directory lets us write), then
// removes it where it can. What cannot be removed stays under a name no lock uses.
void moveAside(int dirFd, const std::string& dir, const std::string& name) {
  char aside[128];
  std::snprintf(aside, sizeof aside, ".%s.foreign-%ld-%ld", name.c_str(), static_cast<long>(::getpid()),
                static_cast<long>(std::chrono::steady_clock::now().time_since_epoch().count() & 0xffffff));
  if (::renameat(dirFd, name.c_str(), dirFd, aside) != 0) {
    if (errno == ENOENT) return;
    throw SysError::fromErrno(errno, "rename", "lock", "lock file " + dir + "/" + name + " is not private to this user and cannot be replaced in " + dir);
  }
  if (::unlinkat(dirFd, aside, 0) != 0) {
    int ignored = ::unlinkat(dirFd, aside, AT_REMOVEDIR);  // an empty directory; a full one stays aside
    (void)ignored;
  }
}

class LockWorker : public PromiseWorker {
 public:
  LockWorker(Napi::Env env, std::string path, double waitMs) : PromiseWorker(env, "ctpurge:lock"), path_(std::move(path)), waitMs_(waitMs) {}

 protected:
  // Only the owner can open the lock file (0600 in a directory that only it or root owns), so a
  // user without the purge's privileges can neither take the lock nor hold it. A file at the path
  // that is not ours, not private or not a regular file is replaced, never used; after the flock
  // the path must still name the locked inode, otherwise the lock is taken again.
  void Run() override {
    const auto slash = path_.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : path_.substr(0, slash == 0 ? 1 : slash);
    const std::string name = slash == std::string::npos ? path_ : path_.substr(slash + 1);
    const int dirFd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dirFd < 0) throw SysError::fromErrno(errno, "open", "lock", "cannot open lock directory " + dir);
    try {
      struct stat ds {};
      if (::fstat(dirFd, &ds) != 0) throw SysError::fromErrno(errno, "fstat", "lock");
      if (ds.st_uid != ::geteuid() && ds.st_uid != 0)
        throw SysError::fromErrno(EACCES, "open", "lock", "lock directory " + dir + " belongs to uid " + std::to_string(ds.st_uid));
      // In a sticky directory others can write, a user who is not root can neither remove nor
      // move another user's entry: anyone could plant the lock's name and block every purge.
      if ((ds.st_mode & S_ISVTX) && (ds.st_mode & S_IWOTH) && ::geteuid() != 0)
        throw SysError::fromErrno(EACCES, "open", "lock",
                                  "lock directory " + dir +
                                      " is shared and sticky (like /tmp): another user could plant the lock file there and "
                                      "block every purge; use a directory only this user can write");
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<long long>(waitMs_));
      for (int replaced = 0;;) {
        if (lockOnce(dirFd, dir, name, deadline, replaced)) break;
      }
    } catch (...) {
      ::close(dirFd);
      throw;
    }
    ::close(dirFd);
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd_, 0) == 0) {
      ssize_t ignored = ::pwrite(fd_, pid.data(), pid.size(), 0);
      (void)ignored;
    }
  }

  Napi::Value Resolve(Napi::Env env) override { return Napi::Number::New(env, fd_); }

 private:
  // One attempt: true once fd_ holds the lock on the inode the path names.
  bool lockOnce(int dirFd, const std::string& dir, const std::string& name, std::chrono::steady_clock::time_point deadline, int& replaced) {
    const int fd = ::openat(dirFd, name.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
    struct stat st {};
    if (fd < 0) {
      // ELOOP: a symlink; EISDIR: a directory; EACCES: the kernel's protected_symlinks/
      // _regular/_fifos refusing another user's file in a sticky directory. Either way,
      // replace what is not ours.
      const int err = errno;
      const bool foreign = (err == ELOOP || err == EACCES || err == EISDIR) && ::fstatat(dirFd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                           (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid());
      if (!foreign) throw SysError::fromErrno(err, "open", "lock", "cannot open lock file " + path_);
    }
    if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 077) != 0) {
      // A symlink, FIFO, device, another user's file or a file others can open: replace it.
      if (fd >= 0) ::close(fd);
      if (++replaced > 8) throw SysError::fromErrno(EAGAIN, "open", "lock", "lock file " + path_ + " keeps being replaced");
      moveAside(dirFd, dir, name);
      return false;
    }
    for (;;) {
      if (::flock(fd, LOCK_EX | LOCK_NB) == 0) break;
      const int err = errno;
      if (err == EINTR) continue;
      if (err != EWOULDBLOCK) {
        ::close(fd);
        throw SysError::fromErrno(err, "flock", "lock");
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        SysError e;
        e.operation = "lock";
        e.code = "ELOCKED";
        e.holderPid = confirmedHolder(fd);
        e.message = "the lock is held by another process";
        ::close(fd);
        throw e;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    struct stat now {};
    if (::fstatat(dirFd, name.c_str(), &now, AT_SYMLINK_NOFOLLOW) != 0 || now.st_ino != st.st_ino || now.st_dev != st.st_dev) {
      ::close(fd);  // the file was replaced while we waited: lock the one the path names now
      if (++replaced > 8) throw SysError::fromErrno(EAGAIN, "open", "lock", "lock file " + path_ + " keeps being replaced");
      return false;
    }
    fd_ = fd;
    return true;
  }

  std::string path_;
  double waitMs_;
  int fd_ = -1;
};

}  // namespace

Napi::Value LockFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) throw Napi::TypeError::New(env, "lockFile(path, waitMs)");
  return queueWorker<LockWorker>(env, info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::Number>().DoubleValue());
}

Napi::Value LockPidFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "lockPidFile(path)");
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  try {
    for (int attempt = 0;; attempt++) {
      // O_NOFOLLOW on the file only: /var/run -> /run is a symlinked directory on Debian.
      // No O_TRUNC: a running daemon's file must stay as it is until its lock is known.
      const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | (attempt > 0 ? O_EXCL : 0), 0644);
      if (fd < 0) throw SysError::fromErrno(errno, "open", "pid file", "cannot open " + path);
      struct stat st {};
      if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid() || st.st_nlink != 1) {
        // Another user's file, a FIFO or device, or a hard link (to a file we would truncate):
        // never written; the name is freed and made anew, once.
        ::close(fd);
        if (attempt > 0 || ::unlink(path.c_str()) != 0)
          throw SysError::fromErrno(EEXIST, "open", "pid file", path + " is not a file of this user's; refusing to write it");
        continue;
      }
      int rc;
      while ((rc = ::flock(fd, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR) {}
      if (rc != 0) {
        const int err = errno;
        SysError e = SysError::fromErrno(err, "flock", "pid file");
        if (err == EWOULDBLOCK) {
          e.code = "ELOCKED";
          char buf[32] = {};
          const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
          e.holderPid = n > 0 ? std::strtol(buf, nullptr, 10) : 0;
          e.message = "the pid file is held by another process";
        }
        ::close(fd);
        throw e;
      }
      const std::string pid = std::to_string(::getpid()) + "\n";
      if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
        const int err = errno;
        ::close(fd);
        throw SysError::fromErrno(err, "write", "pid file", "cannot write " + path);
      }
      return Napi::Number::New(env, fd);
    }
  } catch (const SysError& e) { throw toJsError(env, e); }
}

Napi::Value UnlockFile(const Napi::CallbackInfo& info) {
  if (info.Length() > 0 && info[0].IsNumber()) {
    const int fd = info[0].As<Napi::Number>().Int32Value();
    if (fd >= 0) ::close(fd);
  }
  return info.Env().Undefined();
}

}  // namespace ctpurge

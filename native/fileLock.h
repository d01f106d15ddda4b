// An flock(2) lock file, so two purges of one namespace never overlap. The kernel drops
// the lock when the holder dies, kill -9 included: no stale locks.
#pragma once
#include <napi.h>

namespace ctpurge {

// lockFile(path, waitMs) -> Promise<number fd>; rejects with code 'ELOCKED' and holderPid
// when another process still holds it after waitMs (holderPid 0 unless /proc/locks confirms
// that the pid written in the file holds it). The file is 0600 and owned by the caller: one
// that is not (another user's, a symlink, a FIFO) is replaced, so no other user can block it.
Napi::Value LockFile(const Napi::CallbackInfo& info);
// lockPidFile(path) -> number fd: a daemon's pid file, created 0644 (O_NOFOLLOW on the file,
// not its directories), flock'd for the daemon's life and holding its pid. Throws code
// 'ELOCKED' with holderPid (the pid in the file) when a live process holds it; a file that is
// not this user's, not regular or a hard link is replaced, never written.
Napi::Value LockPidFile(const Napi::CallbackInfo& info);
// unlockFile(fd): closes the descriptor, which releases the lock.
Napi::Value UnlockFile(const Napi::CallbackInfo& info);

}  // namespace ctpurge

// An flock(2) lock file, so two purges of one namespace never overlap. The kernel drops
// the lock when the holder dies, kill -9 included: no stale locks.
#pragma once
#include <napi.h>

namespace ctpurge {

// lockFile(path, waitMs) -> Promise<number fd>; rejects with code 'ELOCKED' and holderPid
// when another process still holds it after waitMs.
Napi::Value LockFile(const Napi::CallbackInfo& info);
// unlockFile(fd): closes the descriptor, which releases the lock.
Napi::Value UnlockFile(const Napi::CallbackInfo& info);

}  // namespace ctpurge

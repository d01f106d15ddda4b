// The purge: dump (kernel-filtered where possible), match each entry in C++, and delete
// matches (or, with a grace, update their timeout) in batches on a second socket while the
// dump is still running; or the plan's filtered flush requests.
#pragma once
#include <napi.h>

#include "handle.h"

namespace ctpurge {

// handle.purge(method: 'flush' | 'dump', lanes, { dryRun, limit, grace, collectGraced,
//               wantEntries, logFd, logTag, cancel: Int32Array }, onProgress)
//   -> Promise<{ scanned, matched, deleted, vanished, batches, lostReports, logged, graced,
//                fixedTimeout, offloaded, expiring, method, cancelled, limitReached,
//                logErrno?, logCode?, gracedIds?: Uint32Array }>
// (NativePurgeOptions and NativePurgeCounts in src/native.ts.) onProgress(counts,
// recordsArrayBuffer | undefined) is called on the JS thread. A failure rejects with the
// error and `partial`, the counts so far.
Napi::Value startPurge(const Napi::CallbackInfo& info, NamespacePtr ns);

}  // namespace ctpurge

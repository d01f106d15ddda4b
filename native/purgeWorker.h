// The purge: dump (kernel-filtered where possible), match each entry in C++, and delete
// matches in batches on a second socket while the dump is still running.
#pragma once
#include <napi.h>

#include "handle.h"

namespace ctpurge {

// handle.purge(filter, lanes, { dryRun, limit, wantEntries, cancel: Int32Array }, onProgress)
//   -> Promise<{ scanned, matched, deleted, vanished, method, cancelled, limitReached, lostReports }>
// onProgress(counts, recordsArrayBuffer | undefined) is called on the JS thread.
Napi::Value startPurge(const Napi::CallbackInfo& info, NamespacePtr ns);

}  // namespace ctpurge

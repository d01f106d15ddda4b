// The table summary behind `stats` and summary(): one dump per lane for the breakdowns and
// the talkers, counted exactly while the counts fit in a memory budget. A lane past it keeps
// heavy hitters instead, and a second dump counts those candidates exactly. Memory stays
// bounded whatever the number of distinct addresses.
#pragma once
#include <napi.h>

#include "handle.h"

namespace ctpurge {

// handle.summary(lanes, { talkers, top, capacity, memory, cancel? }) -> Promise<NativeSummary>
// (see src/native.ts), or { cancelled: true } when JS set cancel[0] (an Int32Array on a
// SharedArrayBuffer) before the dumps ended: they stop after the buffer they are reading.
Napi::Value startSummary(const Napi::CallbackInfo& info, NamespacePtr ns);

}  // namespace ctpurge

// The table summary behind `stats` and summary(): one dump per lane for the breakdowns and
// the talkers, counted exactly while the counts fit in a memory budget. A lane past it keeps
// heavy hitters instead, and a second dump counts those candidates exactly. Memory stays
// bounded whatever the number of distinct addresses.
#pragma once
#include <napi.h>

#include "handle.h"

namespace ctpurge {

// handle.summary(lanes, { talkers, top, capacity, memory }) -> Promise<NativeSummary>
// (see src/native.ts).
Napi::Value startSummary(const Napi::CallbackInfo& info, NamespacePtr ns);

}  // namespace ctpurge

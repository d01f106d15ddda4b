// The table summary behind `stats` and summary(): one dump per lane for the breakdowns and
// the heavy hitters, then (with talkers) a second one that counts the candidate addresses
// exactly. Memory stays bounded whatever the number of distinct addresses.
#pragma once
#include <napi.h>

#include "handle.h"

namespace ctpurge {

// handle.summary(lanes, { talkers: boolean, capacity: number }) -> Promise<NativeSummary>
// (see src/native.ts).
Napi::Value startSummary(const Napi::CallbackInfo& info, NamespacePtr ns);

}  // namespace ctpurge

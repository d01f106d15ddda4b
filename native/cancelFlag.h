// A cancel asked from JS (src/handleAccess.ts, abortFlag): an Int32Array on a SharedArrayBuffer
// whose element 0 JS sets to 1 on abort. A worker's threads read it between kernel reads.
#pragma once
#include <cstdint>

namespace ctpurge {

// Whether JS has asked to cancel (no flag: never).
inline bool cancelRequested(const int32_t* flag) { return flag != nullptr && __atomic_load_n(flag, __ATOMIC_RELAXED) != 0; }

}  // namespace ctpurge

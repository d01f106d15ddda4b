// Entries cross to JS as fixed-size little-endian records packed into one ArrayBuffer per
// chunk: no JS object is created per entry on the native side. src/entryRecord.ts reads
// the same layout; change both together.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ctMessage.h"
#include "policyTimeouts.h"

namespace ctpurge {

constexpr size_t kRecordSize = 184;

enum RecordFlag : uint8_t {
  kHasTimeout = 1,
  kHasCounters = 2,
  kHasStart = 4,
  kHasLabels = 8,
  kOrigPorts = 16,
  kOrigIcmp = 32,
  kReplyPorts = 64,
  kReplyIcmp = 128,
};

void appendRecord(std::vector<uint8_t>& out, const Entry& e, const Ages& ages);

// The inverse, for formatting records that did not come from the kernel (the text formats'
// unit tests): the entry and its ages as appendRecord wrote them (start to the microsecond;
// e.origTupleAttr stays null).
void readRecord(const uint8_t* r, Entry& e, Ages& ages);

}  // namespace ctpurge

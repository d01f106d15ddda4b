// Entries as NDJSON text, formatted here so `ctpurge list --json` of a million entries
// does not build a million JS objects. Must print exactly what src/cli/format.ts jsonLine()
// prints for the same entry (a test compares them).
#pragma once
#include <string>

#include "ctMessage.h"
#include "policyTimeouts.h"

namespace ctpurge {

void appendNdjson(std::string& out, const Entry& e, const Ages& ages);

// One line shaped like `conntrack -L` prints it, exactly as conntrackLine() in
// src/cli/format.ts (delta-time against nowNs, wall clock).
void appendConntrackLine(std::string& out, const Entry& e, uint64_t nowNs);

}  // namespace ctpurge

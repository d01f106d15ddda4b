// The list export: the plan's entries as text lines written to a descriptor on the dump
// threads, one lane per thread, with no JS object per entry. It reads and writes, and sends
// nothing that could change the table.
#pragma once
#include <napi.h>

#include "handle.h"

namespace ctpurge {

// handle.export(lanes, { fd, format: 'ndjson' | 'conntrack' | 'table', limit?, cancel?: Int32Array })
//   -> Promise<{ written, cancelled, limitReached, writeErrno?, writeCode? }>
// (NativeExportOptions and NativeExportCounts in src/native.ts.) A failed write ends the
// export with writeErrno/writeCode set; what was written before it stays whole lines.
Napi::Value startExport(const Napi::CallbackInfo& info, NamespacePtr ns);

}  // namespace ctpurge

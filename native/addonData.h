// Per-environment state (main thread and every worker_thread get their own), so the
// addon keeps no process globals.
#pragma once
#include <napi.h>

namespace ctpurge {

struct AddonData {
  Napi::FunctionReference handleCtor;
  Napi::FunctionReference cursorCtor;
  Napi::FunctionReference eventCtor;
};

}  // namespace ctpurge

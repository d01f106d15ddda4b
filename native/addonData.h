// Per-environment state (main thread and every worker_thread get their own), so the
// addon keeps no process globals.
#pragma once
#include <napi.h>

#include <atomic>
#include <memory>

namespace ctpurge {

struct AddonData {
  Napi::FunctionReference handleCtor;
  Napi::FunctionReference cursorCtor;
  Napi::FunctionReference eventCtor;
  // Set by the environment's cleanup hook (process.exit, an uncaught exception, a worker's
  // terminate()): workers that wait for events stop at their next poll slice, so an event
  // stream never holds the process or the worker hostage.
  std::shared_ptr<std::atomic<bool>> shuttingDown = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace ctpurge

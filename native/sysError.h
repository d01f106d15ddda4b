// One error type for everything the native side can fail on. It keeps the kernel's errno
// and the syscall apart from the message (STYLE: errno is never folded into a string).
#pragma once
#include <napi.h>

#include <string>

namespace ctpurge {

struct SysError {
  int errnum = 0;         // positive errno, 0 when the error is not a syscall failure
  std::string syscall;    // "setns", "socket", "sendmsg", "recvmsg", "open", ...
  std::string operation;  // what ctpurge was doing: "dump", "delete", "flush", ...
  std::string message;    // extra context; the errno text is added when converting
  std::string code;       // overrides the errno name (e.g. "ELOCKED")
  long holderPid = -1;    // ELOCKED: the process holding the lock

  static SysError fromErrno(int err, std::string syscall, std::string operation, std::string message = {});
};

// Throws a SysError carrying errno (the caller's current errno unless given).
[[noreturn]] void throwErrno(const char* syscall, const std::string& operation, int err);

// Builds the JS Error object: message, code ("EPERM"), errno (negative, like Node), syscall.
Napi::Error toJsError(Napi::Env env, const SysError& e);

// "EPERM" for EPERM, and so on; nullptr for one it does not know.
const char* errnoName(int err);
// Its name, or "E<n>" for one errnoName does not know: a code JS can always be given.
std::string errnoCode(int err);

}  // namespace ctpurge

#include "sysError.h"

#include <cerrno>
#include <cstring>

namespace ctpurge {

SysError SysError::fromErrno(int err, std::string syscall, std::string operation, std::string message) {
  SysError e;
  e.errnum = err;
  e.syscall = std::move(syscall);
  e.operation = std::move(operation);
  e.message = std::move(message);
  return e;
}

void throwErrno(const char* syscall, const std::string& operation, int err) { throw SysError::fromErrno(err, syscall, operation); }

const char* errnoName(int err) {
  switch (err) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case ENODEV: return "ENODEV";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case ENFILE: return "ENFILE";
    case EMFILE: return "EMFILE";
    case ENOSPC: return "ENOSPC";
    case ERANGE: return "ERANGE";
    case ENOSYS: return "ENOSYS";
    case ENOTSUP: return "EOPNOTSUPP";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EMSGSIZE: return "EMSGSIZE";
    case ENOBUFS: return "ENOBUFS";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ELOOP: return "ELOOP";
    case EPIPE: return "EPIPE";
    case ECONNRESET: return "ECONNRESET";
    case EFBIG: return "EFBIG";
    case EDQUOT: return "EDQUOT";
    case EROFS: return "EROFS";
    case ENXIO: return "ENXIO";
    default: return nullptr;
  }
}

std::string errnoCode(int err) {
  const char* name = errnoName(err);
  return name ? std::string(name) : "E" + std::to_string(err);
}

Napi::Error toJsError(Napi::Env env, const SysError& e) {
  std::string msg;
  if (e.errnum != 0) {
    msg = std::string(std::strerror(e.errnum));
    if (!e.message.empty()) msg = e.message + ": " + msg;
  } else {
    msg = e.message;
  }
  Napi::Error err = Napi::Error::New(env, msg);
  Napi::Object o = err.Value();
  if (!e.code.empty()) {
    o.Set("code", e.code);
    if (e.holderPid >= 0) o.Set("holderPid", Napi::Number::New(env, static_cast<double>(e.holderPid)));
  } else if (e.errnum != 0) {
    o.Set("code", errnoCode(e.errnum));
    o.Set("errno", Napi::Number::New(env, -e.errnum));
  } else {
    o.Set("code", "ECTPURGE");
  }
  if (!e.syscall.empty()) o.Set("syscall", e.syscall);
  if (!e.operation.empty()) o.Set("operation", e.operation);
  return err;
}

}  // namespace ctpurge

// A handle on one network namespace's conntrack table. It holds the namespace, not a
// socket: every operation opens its own sockets inside the namespace on its worker
// thread, so concurrent operations never share one.
#pragma once
#include <napi.h>

#include <atomic>
#include <memory>
#include <string>

#include "netlinkSocket.h"

namespace ctpurge {

struct Namespace {
  UniqueFd fd;  // -1: the process's own namespace
  std::string label;
  double inode = -1;  // the namespace file's inode (fstat of fd); -1 for the own namespace
};
using NamespacePtr = std::shared_ptr<const Namespace>;

class Handle : public Napi::ObjectWrap<Handle> {
 public:
  static Napi::Function Define(Napi::Env env);
  // open(netnsPath | null) -> Promise<Handle>
  static Napi::Value Open(const Napi::CallbackInfo& info);
  static Napi::Object NewInstance(Napi::Env env, NamespacePtr ns);

  explicit Handle(const Napi::CallbackInfo& info);
  NamespacePtr ns() const { return ns_; }

 private:
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Count(const Napi::CallbackInfo& info);
  Napi::Value Get(const Napi::CallbackInfo& info);
  Napi::Value Create(const Napi::CallbackInfo& info);
  Napi::Value Delete(const Napi::CallbackInfo& info);
  Napi::Value Settings(const Napi::CallbackInfo& info);
  Napi::Value Dump(const Napi::CallbackInfo& info);
  Napi::Value Purge(const Napi::CallbackInfo& info);
  Napi::Value Export(const Napi::CallbackInfo& info);
  Napi::Value Summary(const Napi::CallbackInfo& info);
  Napi::Value Events(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Inode(const Napi::CallbackInfo& info);

  NamespacePtr checkedNs(Napi::Env env) const;

  NamespacePtr ns_;
};

}  // namespace ctpurge

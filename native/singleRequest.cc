#include "singleRequest.h"

#include <cerrno>

#include "sysError.h"

namespace ctpurge {

bool getEntry(NetlinkSocket& s, const EntrySpec& spec, Entry& e) {
  char buf[MNL_SOCKET_BUFFER_SIZE] = {};  // zeroed: no stack bytes reach the kernel in padding
  EntrySpec lookup = spec;
  lookup.hasId = false;  // the kernel's GET ignores the id; we compare it below
  nlmsghdr* nlh = buildSpecRequest(buf, SpecRequest::Get, s.nextSeq(), lookup);
  bool found = false;
  try {
    s.request(nlh, "get", [&](const nlmsghdr* m) {
      if (parseEntry(m, e)) found = true;
    });
  } catch (const SysError& err) {
    if (err.errnum == ENOENT) return false;
    throw;
  }
  e.origTupleAttr = nullptr;
  if (found && spec.hasId && e.id != spec.id) return false;
  return found;
}

void createEntry(NetlinkSocket& s, const EntrySpec& spec) {
  char buf[MNL_SOCKET_BUFFER_SIZE] = {};  // zeroed: no stack bytes reach the kernel in padding
  nlmsghdr* nlh = buildSpecRequest(buf, SpecRequest::Create, s.nextSeq(), spec);
  s.request(nlh, "create", [](const nlmsghdr*) {});
}

bool deleteEntry(NetlinkSocket& s, const EntrySpec& spec) {
  char buf[MNL_SOCKET_BUFFER_SIZE] = {};  // zeroed: no stack bytes reach the kernel in padding
  nlmsghdr* nlh = buildSpecRequest(buf, SpecRequest::Delete, s.nextSeq(), spec);
  try {
    s.request(nlh, "delete", [](const nlmsghdr*) {});
  } catch (const SysError& err) {
    if (err.errnum == ENOENT) return false;
    throw;
  }
  return true;
}

}  // namespace ctpurge

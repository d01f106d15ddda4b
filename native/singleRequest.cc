#include "singleRequest.h"

#include <cerrno>
#include <cstring>

#include "sysError.h"

namespace ctpurge {
namespace {

// Whether the entry's original tuple is the spec's. The kernel's lookup by tuple finds an
// entry by either direction: asked for A -> B, it answers with the entry whose reply is A -> B
// (a NAT mapping) when no entry has that original tuple.
bool origTupleIs(const Entry& e, const EntrySpec& spec) {
  if (e.family != spec.family || e.protocol != spec.protocol) return false;
  if (std::memcmp(e.orig.src, spec.src, sizeof spec.src) != 0 || std::memcmp(e.orig.dst, spec.dst, sizeof spec.dst) != 0) return false;
  if (spec.hasPorts && (e.orig.sport != spec.sport || e.orig.dport != spec.dport)) return false;
  if (spec.hasIcmp && (e.orig.icmpType != spec.icmpType || e.orig.icmpCode != spec.icmpCode || e.orig.icmpId != spec.icmpId)) return false;
  return true;
}

}  // namespace

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
  if (!found || !origTupleIs(e, spec)) return false;
  if (spec.hasId && e.id != spec.id) return false;
  return true;
}

void createEntry(NetlinkSocket& s, const EntrySpec& spec) {
  char buf[MNL_SOCKET_BUFFER_SIZE] = {};  // zeroed: no stack bytes reach the kernel in padding
  nlmsghdr* nlh = buildSpecRequest(buf, SpecRequest::Create, s.nextSeq(), spec);
  s.request(nlh, "create", [](const nlmsghdr*) {});
}

bool deleteEntry(NetlinkSocket& s, const EntrySpec& spec) {
  // By tuple, the kernel would delete an entry whose reply tuple it is (given an id too, if the
  // id is that entry's): the entry with that original tuple (and id) is looked up first, and
  // deleted by its id.
  EntrySpec target = spec;
  Entry e;
  if (!getEntry(s, spec, e)) return false;
  target.hasId = true;
  target.id = e.id;
  char buf[MNL_SOCKET_BUFFER_SIZE] = {};  // zeroed: no stack bytes reach the kernel in padding
  nlmsghdr* nlh = buildSpecRequest(buf, SpecRequest::Delete, s.nextSeq(), target);
  try {
    s.request(nlh, "delete", [](const nlmsghdr*) {});
  } catch (const SysError& err) {
    if (err.errnum == ENOENT) return false;
    throw;
  }
  return true;
}

}  // namespace ctpurge

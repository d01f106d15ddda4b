// Walks over netlink attributes. libmnl's iteration macros do arithmetic on void*, which C++
// rejects; these do the same and let unknown attributes (newer kernels) pass untouched.
#pragma once
#include <libmnl/libmnl.h>

#include <cstddef>

namespace ctpurge {

template <typename Fn>
void forEachIn(const nlattr* first, int len, Fn&& fn) {
  for (const nlattr* a = first; mnl_attr_ok(a, len); a = mnl_attr_next(a)) {
    len -= static_cast<int>(MNL_ALIGN(a->nla_len));
    fn(a);
  }
}

template <typename Fn>
void forEachNested(const nlattr* nest, Fn&& fn) {
  forEachIn(static_cast<const nlattr*>(mnl_attr_get_payload(nest)), static_cast<int>(mnl_attr_get_payload_len(nest)), fn);
}

// The attributes of a message, after its fixed header of `offset` bytes (nfgenmsg).
template <typename Fn>
void forEachAttr(const nlmsghdr* nlh, size_t offset, Fn&& fn) {
  forEachIn(static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, offset)), static_cast<int>(nlh->nlmsg_len - MNL_NLMSG_HDRLEN - MNL_ALIGN(offset)), fn);
}

inline bool payloadAtLeast(const nlattr* a, size_t n) { return mnl_attr_get_payload_len(a) >= n; }

}  // namespace ctpurge

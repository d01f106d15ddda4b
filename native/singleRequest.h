// The exchanges about one entry (get, create, delete): a request built by buildSpecRequest
// (ctRequest.h), its answer read by parseEntry.
#pragma once
#include "ctMessage.h"
#include "ctRequest.h"
#include "netlinkSocket.h"

namespace ctpurge {

// Fills e (whose tuple pointer is then invalid) and returns true when found; false on ENOENT.
bool getEntry(NetlinkSocket& s, const EntrySpec& spec, Entry& e);
// Creates the entry; the kernel's EEXIST/EINVAL/EBUSY are thrown as SysError.
void createEntry(NetlinkSocket& s, const EntrySpec& spec);
// Deletes by tuple + zone (+ id when given). Returns false when the kernel answered
// ENOENT: the entry was already gone, or the tuple now belongs to a different flow.
bool deleteEntry(NetlinkSocket& s, const EntrySpec& spec);

}  // namespace ctpurge

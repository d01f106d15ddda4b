// Every ctnetlink request ctpurge sends, built in one place on one header (putHeader): dumps,
// flushes and statistics with their kernel filters, the batched requests of a purge (the
// entry's tuple echoed as the kernel wrote it), and the requests about one entry named by a
// spec (get, create, delete: their attributes written by libnetfilter_conntrack). Which
// library writes what, and the figure behind it: docs/architecture.md.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ctMessage.h"

namespace ctpurge {

// Writes the request into buf (at least MNL_SOCKET_BUFFER_SIZE) and returns the header.
nlmsghdr* buildDumpRequest(char* buf, uint32_t seq, const KernelFilter& f);
// A DELETE without a tuple: the kernel flushes everything that passes the filter.
// version=1 makes the kernel honour the family (with version 0 it flushes all families).
nlmsghdr* buildFlushRequest(char* buf, uint32_t seq, const KernelFilter& f);
nlmsghdr* buildStatsRequest(char* buf, uint32_t seq, bool perCpu);

// The requests a purge sends about one entry it has read: a DELETE (tuple, zone and id: a
// flow that reused the tuple since the dump answers ENOENT), or a timeout update (--grace: a
// CT_NEW without NLM_F_CREATE, with tuple, zone and CTA_TIMEOUT; the kernel does not check an
// id on update, so none is sent).
enum class EntryRequest { Delete, Timeout };

// Appends the request for e (its original tuple echoed verbatim) to out. timeout: seconds, for
// EntryRequest::Timeout. Returns false when the entry has no tuple to echo.
bool appendEntryRequest(std::vector<char>& out, const Entry& e, uint32_t seq, EntryRequest kind, uint32_t timeout = 0);
// The size appendEntryRequest would add (the same for both kinds), for batch planning.
size_t entryRequestSize(const Entry& e);

// Everything needed to name one entry (get/delete) or make one (create).
struct EntrySpec {
  uint8_t family = 0;
  uint8_t protocol = 0;
  uint8_t src[16] = {}, dst[16] = {};
  bool hasPorts = false;
  uint16_t sport = 0, dport = 0;
  bool hasIcmp = false;
  uint8_t icmpType = 0, icmpCode = 0;
  uint16_t icmpId = 0;
  bool hasReply = false;
  uint8_t replySrc[16] = {}, replyDst[16] = {};
  uint16_t replySport = 0, replyDport = 0;
  bool hasZone = false, hasOrigZone = false, hasReplyZone = false;
  uint16_t zone = 0, origZone = 0, replyZone = 0;  // as Entry's
  bool hasId = false;
  uint32_t id = 0;
  // create only
  bool hasState = false;
  uint8_t state = 0;
  uint32_t timeout = 0;
  bool hasStatus = false;
  uint32_t status = 0;
  bool hasMark = false;
  uint32_t mark = 0;
  bool hasLabels = false;
  uint8_t labels[16] = {};
};

// The requests about one entry that a caller names by its spec (the API's get, create and
// delete): written into buf (at least MNL_SOCKET_BUFFER_SIZE, zeroed), each asking for an ACK.
enum class SpecRequest { Get, Create, Delete };
nlmsghdr* buildSpecRequest(char* buf, SpecRequest kind, uint32_t seq, const EntrySpec& spec);

}  // namespace ctpurge

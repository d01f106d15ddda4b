#include "dumpReader.h"

#include "ctRequest.h"

namespace ctpurge {

namespace {
// The kernel sizes each dump message batch to the receive buffer we used last (capped at
// 32 KiB on current kernels); 64 KiB leaves room and never truncates.
constexpr size_t kDumpBufferSize = 64 * 1024;
}  // namespace

DumpReader::DumpReader(int nsFd, const KernelFilter& filter, const char* operation)
    : sock_(NetlinkSocket::open(nsFd, operation)), buf_(kDumpBufferSize), operation_(operation) {
  sock_.setReceiveBuffer(4 * 1024 * 1024);
  seq_ = sock_.nextSeq();
  char req[MNL_SOCKET_BUFFER_SIZE] = {};
  nlmsghdr* nlh = buildDumpRequest(req, seq_, filter);
  sock_.send(nlh, nlh->nlmsg_len, operation_);
}

}  // namespace ctpurge

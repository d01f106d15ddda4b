#include "netlinkSocket.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/netlink.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <vector>

#include "sysError.h"

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif
#ifndef NS_GET_NSTYPE
#define NS_GET_NSTYPE _IO(0xb7, 0x3)
#endif

namespace ctpurge {

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

UniqueFd openNetnsFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw SysError::fromErrno(errno, "open", "open", "cannot open network namespace " + path);
  struct statfs st {};
  if (::fstatfs(fd.get(), &st) != 0) throwErrno("fstatfs", "open", errno);
  if (static_cast<unsigned long>(st.f_type) != NSFS_MAGIC) { throw SysError::fromErrno(EINVAL, "fstatfs", "open", path + " is not a namespace file"); }
  int type = ::ioctl(fd.get(), NS_GET_NSTYPE);
  if (type >= 0 && type != CLONE_NEWNET) { throw SysError::fromErrno(EINVAL, "ioctl", "open", path + " is not a network namespace"); }
  return fd;
}

void inNetns(int nsFd, const std::function<void()>& fn) {
  if (nsFd < 0) {
    fn();
    return;
  }
  UniqueFd home(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!home) throwErrno("open", "setns", errno);
  if (::setns(nsFd, CLONE_NEWNET) != 0) { throw SysError::fromErrno(errno, "setns", "setns", "cannot enter the network namespace"); }
  // Whatever fn throws, the thread goes home first.
  std::exception_ptr failure;
  try {
    fn();
  } catch (...) { failure = std::current_exception(); }
  if (::setns(home.get(), CLONE_NEWNET) != 0) {
    std::fprintf(stderr, "ctpurge: fatal: cannot return a thread to its network namespace (errno %d)\n", errno);
    std::abort();
  }
  if (failure) std::rethrow_exception(failure);
}

NetlinkSocket NetlinkSocket::open(int nsFd, const std::string& operation) {
  NetlinkSocket s;
  inNetns(nsFd, [&] {
    mnl_socket* raw = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
    if (!raw) throwErrno("socket", operation, errno);
    s.sock_.reset(raw);
  });
  if (mnl_socket_bind(s.sock_.get(), 0, MNL_SOCKET_AUTOPID) < 0) throwErrno("bind", operation, errno);
  s.portid_ = mnl_socket_get_portid(s.sock_.get());
  s.seq_ = static_cast<uint32_t>(std::time(nullptr));
  return s;
}

void NetlinkSocket::setReceiveBuffer(int bytes) {
  if (::setsockopt(fd(), SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0) { ::setsockopt(fd(), SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes); }
}

void NetlinkSocket::setSendBuffer(int bytes) {
  if (::setsockopt(fd(), SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes) != 0) { ::setsockopt(fd(), SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes); }
}

int NetlinkSocket::sendBufferSize() const {
  int v = 0;
  socklen_t l = sizeof v;
  if (::getsockopt(fd(), SOL_SOCKET, SO_SNDBUF, &v, &l) != 0) return 212992;
  return v;
}

void NetlinkSocket::capAcks() {
  int one = 1;
  ::setsockopt(fd(), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
}

void NetlinkSocket::joinGroup(int group) {
  if (mnl_socket_setsockopt(sock_.get(), NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0) { throwErrno("setsockopt", "events", errno); }
}

void NetlinkSocket::send(const void* buf, size_t len, const std::string& operation) {
  ssize_t n = mnl_socket_sendto(sock_.get(), buf, len);
  if (n < 0) throwErrno("sendmsg", operation, errno);
}

size_t NetlinkSocket::receive(void* buf, size_t len, const std::string& operation) {
  for (;;) {
    ssize_t n = ::recv(fd(), buf, len, 0);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    throwErrno("recvmsg", operation, errno);
  }
}

void NetlinkSocket::request(const nlmsghdr* nlh, const std::string& operation, const std::function<void(const nlmsghdr*)>& onMessage) {
  send(nlh, nlh->nlmsg_len, operation);
  std::vector<char> buf(64 * 1024);
  const uint32_t seq = nlh->nlmsg_seq;
  for (;;) {
    size_t n = receive(buf.data(), buf.size(), operation);
    int len = static_cast<int>(n);
    for (const nlmsghdr* m = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(m, len); m = mnl_nlmsg_next(m, &len)) {
      if (m->nlmsg_seq != seq || m->nlmsg_pid != portid_) continue;
      if (m->nlmsg_type == NLMSG_DONE) return;
      if (m->nlmsg_type == NLMSG_ERROR) {
        const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m));
        if (err->error == 0) return;  // the ACK
        throwErrno("recvmsg", operation, -err->error);
      }
      if (m->nlmsg_type == NLMSG_NOOP || m->nlmsg_type == NLMSG_OVERRUN) continue;
      onMessage(m);
      if (!(m->nlmsg_flags & NLM_F_MULTI) && !(nlh->nlmsg_flags & NLM_F_ACK)) return;
    }
  }
}

}  // namespace ctpurge

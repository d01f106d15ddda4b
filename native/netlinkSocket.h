// Netlink sockets opened inside a network namespace, and the namespace switch itself.
#pragma once
#include <libmnl/libmnl.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace ctpurge {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  ~UniqueFd();
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// Opens a namespace file (/var/run/netns/NAME, /proc/PID/ns/net) and checks it really is a
// network namespace, so a wrong path fails before any socket is opened.
UniqueFd openNetnsFile(const std::string& path);

// Runs fn with the calling thread inside the namespace nsFd (nothing to do when nsFd < 0),
// then puts the thread back. A thread that cannot go back aborts the process: a worker
// thread left in another namespace would aim later operations at the wrong table.
void inNetns(int nsFd, const std::function<void()>& fn);

struct MnlSocketDeleter {
  void operator()(mnl_socket* s) const {
    if (s) mnl_socket_close(s);
  }
};

class NetlinkSocket {
 public:
  // Opens a NETLINK_NETFILTER socket; inside nsFd when nsFd >= 0.
  static NetlinkSocket open(int nsFd, const std::string& operation);

  int fd() const { return mnl_socket_get_fd(sock_.get()); }
  uint32_t portid() const { return portid_; }
  uint32_t nextSeq() { return ++seq_; }

  // Large buffers: SO_RCVBUFFORCE needs CAP_NET_ADMIN, which every ctnetlink user has.
  void setReceiveBuffer(int bytes);
  void setSendBuffer(int bytes);
  int sendBufferSize() const;
  void capAcks();             // NETLINK_CAP_ACK: error replies without the echoed request
  void joinGroup(int group);  // NETLINK_ADD_MEMBERSHIP

  void send(const void* buf, size_t len, const std::string& operation);
  // Blocking receive; returns bytes, throws on error.
  size_t receive(void* buf, size_t len, const std::string& operation);

  // Sends one request and walks the reply until its ACK/DONE, calling onMessage for each
  // data message. Kernel errors (NLMSG_ERROR) throw with the kernel's errno.
  void request(const nlmsghdr* nlh, const std::string& operation, const std::function<void(const nlmsghdr*)>& onMessage);

 private:
  std::unique_ptr<mnl_socket, MnlSocketDeleter> sock_;
  uint32_t portid_ = 0;
  uint32_t seq_ = 0;
};

}  // namespace ctpurge

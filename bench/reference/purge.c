/*
 * The plain-C peer of `ctpurge --unreplied --older SECONDS` for npm run bench: libmnl only,
 * the way a careful C programmer would write it without ctpurge's pipelining. One dump with
 * the kernel's status filter (unreplied entries only, CTA_STATUS + CTA_STATUS_MASK, 5.15+),
 * the age of each entry from its timeout against the namespace's policy timeout, then the
 * deletes in batches of 64 KiB, one ACK per message (an 8 MiB receive buffer holds them). TCP
 * ESTABLISHED and UDP only: the bench
 * table has nothing else, and an entry of any other kind is left alone.
 *
 *   cc -O2 -o purge-ref bench/reference/purge.c -lmnl
 *   ip netns exec NS ./purge-ref 3600      -> prints the number deleted, and the seconds the
 *                                            dump and the deletes took: "262144 0.98 0.52"
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tcp.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define RECV_SIZE (64 * 1024)
#define BATCH_SIZE (64 * 1024)

struct victims {
  char* buf; /* per entry: u8 family, u16 zone, u32 id, u16 tuple length, the CTA_TUPLE_ORIG attribute */
  size_t len, cap, count;
};

static long tcp_established, udp_timeout;
static long older_than;
static struct victims victims;

static long sysctl(const char* name) {
  char path[256];
  snprintf(path, sizeof path, "/proc/sys/net/netfilter/%s", name);
  FILE* f = fopen(path, "r");
  long v = -1;
  if (!f || fscanf(f, "%ld", &v) != 1) {
    fprintf(stderr, "purge-ref: cannot read %s\n", path);
    exit(1);
  }
  fclose(f);
  return v;
}

static void keep(uint8_t family, uint16_t zone, uint32_t id, const struct nlattr* tuple) {
  const size_t need = 9 + tuple->nla_len;
  if (victims.len + need > victims.cap) {
    victims.cap = victims.cap ? victims.cap * 2 : 1 << 20;
    victims.buf = realloc(victims.buf, victims.cap);
    if (!victims.buf) exit(1);
  }
  char* p = victims.buf + victims.len;
  uint16_t tlen = tuple->nla_len;
  p[0] = (char)family;
  memcpy(p + 1, &zone, 2);
  memcpy(p + 3, &id, 4);
  memcpy(p + 7, &tlen, 2);
  memcpy(p + 9, tuple, tlen);
  victims.len += need;
  victims.count++;
}

static int attr_cb(const struct nlattr* attr, void* data) {
  const struct nlattr** tb = data;
  const int type = mnl_attr_get_type(attr);
  if (type <= CTA_MAX) tb[type] = attr;
  return MNL_CB_OK;
}

static int proto_cb(const struct nlattr* attr, void* data) {
  const struct nlattr** tb = data;
  const int type = mnl_attr_get_type(attr);
  if (type <= CTA_PROTOINFO_TCP_MAX) tb[type] = attr;
  return MNL_CB_OK;
}

static int tuple_proto(const struct nlattr* tuple) {
  const struct nlattr* tb[CTA_TUPLE_MAX + 1] = {0};
  mnl_attr_parse_nested(tuple, attr_cb, tb);
  if (!tb[CTA_TUPLE_PROTO]) return -1;
  const struct nlattr* pb[CTA_PROTO_MAX + 1] = {0};
  mnl_attr_parse_nested(tb[CTA_TUPLE_PROTO], attr_cb, pb);
  return pb[CTA_PROTO_NUM] ? mnl_attr_get_u8(pb[CTA_PROTO_NUM]) : -1;
}

static int entry_cb(const struct nlmsghdr* nlh, void* data) {
  (void)data;
  const struct nfgenmsg* nfg = mnl_nlmsg_get_payload(nlh);
  const struct nlattr* tb[CTA_MAX + 1] = {0};
  mnl_attr_parse(nlh, sizeof(*nfg), attr_cb, tb);
  if (!tb[CTA_TUPLE_ORIG] || !tb[CTA_TIMEOUT] || !tb[CTA_STATUS]) return MNL_CB_OK;
  if (ntohl(mnl_attr_get_u32(tb[CTA_STATUS])) & IPS_SEEN_REPLY) return MNL_CB_OK;
  long policy;
  const int proto = tuple_proto(tb[CTA_TUPLE_ORIG]);
  if (proto == IPPROTO_TCP) {
    if (!tb[CTA_PROTOINFO]) return MNL_CB_OK;
    const struct nlattr* pi[CTA_PROTOINFO_MAX + 1] = {0};
    mnl_attr_parse_nested(tb[CTA_PROTOINFO], attr_cb, pi);
    if (!pi[CTA_PROTOINFO_TCP]) return MNL_CB_OK;
    const struct nlattr* tcp[CTA_PROTOINFO_TCP_MAX + 1] = {0};
    mnl_attr_parse_nested(pi[CTA_PROTOINFO_TCP], proto_cb, tcp);
    if (!tcp[CTA_PROTOINFO_TCP_STATE] || mnl_attr_get_u8(tcp[CTA_PROTOINFO_TCP_STATE]) != TCP_CONNTRACK_ESTABLISHED) return MNL_CB_OK;
    policy = tcp_established;
  } else if (proto == IPPROTO_UDP) {
    policy = udp_timeout; /* unreplied: never the stream timeout */
  } else {
    return MNL_CB_OK;
  }
  const long left = (long)ntohl(mnl_attr_get_u32(tb[CTA_TIMEOUT]));
  if (policy - left < older_than) return MNL_CB_OK;
  const uint16_t zone = tb[CTA_ZONE] ? ntohs(mnl_attr_get_u16(tb[CTA_ZONE])) : 0;
  const uint32_t id = tb[CTA_ID] ? mnl_attr_get_u32(tb[CTA_ID]) : 0; /* kept in network order */
  keep(nfg->nfgen_family, zone, id, tb[CTA_TUPLE_ORIG]);
  return MNL_CB_OK;
}

static void dump(struct mnl_socket* nl, char* buf) {
  struct nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nlh->nlmsg_seq = 1;
  struct nfgenmsg* nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
  nfg->nfgen_family = AF_UNSPEC;
  nfg->version = NFNETLINK_V0;
  mnl_attr_put_u32(nlh, CTA_STATUS, htonl(0));
  mnl_attr_put_u32(nlh, CTA_STATUS_MASK, htonl(IPS_SEEN_REPLY));
  if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
    perror("purge-ref: dump request");
    exit(1);
  }
  const unsigned portid = mnl_socket_get_portid(nl);
  for (;;) {
    const ssize_t n = mnl_socket_recvfrom(nl, buf, RECV_SIZE);
    if (n < 0) {
      perror("purge-ref: dump");
      exit(1);
    }
    const int r = mnl_cb_run(buf, n, 1, portid, entry_cb, NULL);
    if (r == MNL_CB_STOP) return;
    if (r < 0) {
      perror("purge-ref: dump");
      exit(1);
    }
  }
}

/* Reads the ACKs (or errors: an entry already gone is ENOENT, not a failure) of `pending` messages. */
static size_t acks(struct mnl_socket* nl, char* buf, size_t pending) {
  size_t deleted = 0;
  while (pending > 0) {
    const ssize_t n = mnl_socket_recvfrom(nl, buf, RECV_SIZE);
    if (n < 0) {
      perror("purge-ref: delete");
      exit(1);
    }
    int len = (int)n;
    for (struct nlmsghdr* h = (struct nlmsghdr*)buf; mnl_nlmsg_ok(h, len); h = mnl_nlmsg_next(h, &len)) {
      if (h->nlmsg_type != NLMSG_ERROR) continue;
      const struct nlmsgerr* e = mnl_nlmsg_get_payload(h);
      if (e->error == 0)
        deleted++;
      else if (e->error != -ENOENT) {
        errno = -e->error;
        perror("purge-ref: delete");
        exit(1);
      }
      pending--;
    }
  }
  return deleted;
}

static size_t delete_all(struct mnl_socket* nl, char* buf) {
  char* batch = malloc(BATCH_SIZE);
  size_t used = 0, inBatch = 0, deleted = 0;
  uint32_t seq = 2;
  for (size_t off = 0; off < victims.len;) {
    const char* p = victims.buf + off;
    uint16_t zone, tlen;
    uint32_t id;
    memcpy(&zone, p + 1, 2);
    memcpy(&id, p + 3, 4);
    memcpy(&tlen, p + 7, 2);
    const size_t msgMax = MNL_ALIGN(sizeof(struct nlmsghdr)) + MNL_ALIGN(sizeof(struct nfgenmsg)) + MNL_ALIGN(tlen) + 16;
    if (used + msgMax > BATCH_SIZE) {
      if (mnl_socket_sendto(nl, batch, used) < 0) {
        perror("purge-ref: delete");
        exit(1);
      }
      deleted += acks(nl, buf, inBatch);
      used = inBatch = 0;
    }
    struct nlmsghdr* nlh = mnl_nlmsg_put_header(batch + used);
    nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    nlh->nlmsg_seq = seq++;
    struct nfgenmsg* nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
    nfg->nfgen_family = (uint8_t)p[0];
    nfg->version = NFNETLINK_V0;
    memcpy(mnl_nlmsg_get_payload_tail(nlh), p + 9, tlen);
    nlh->nlmsg_len += MNL_ALIGN(tlen);
    if (zone) mnl_attr_put_u16(nlh, CTA_ZONE, htons(zone));
    mnl_attr_put_u32(nlh, CTA_ID, id);
    used += nlh->nlmsg_len;
    inBatch++;
    off += 9 + tlen;
  }
  if (inBatch > 0) {
    if (mnl_socket_sendto(nl, batch, used) < 0) {
      perror("purge-ref: delete");
      exit(1);
    }
    deleted += acks(nl, buf, inBatch);
  }
  free(batch);
  return deleted;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: purge-ref SECONDS\n");
    return 2;
  }
  older_than = atol(argv[1]);
  tcp_established = sysctl("nf_conntrack_tcp_timeout_established");
  udp_timeout = sysctl("nf_conntrack_udp_timeout");
  struct mnl_socket* nl = mnl_socket_open(NETLINK_NETFILTER);
  if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
    perror("purge-ref: socket");
    return 1;
  }
  /* One ACK per delete: a 64 KiB batch has hundreds, each a whole skb in the receive queue. */
  const int rcvbuf = 8 << 20;
  if (setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0) {
    perror("purge-ref: SO_RCVBUFFORCE");
    return 1;
  }
  char* buf = malloc(RECV_SIZE);
  struct timespec t0, t1, t2;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  dump(nl, buf);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  const size_t deleted = delete_all(nl, buf);
  clock_gettime(CLOCK_MONOTONIC, &t2);
  const double dump_s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  const double delete_s = (double)(t2.tv_sec - t1.tv_sec) + (double)(t2.tv_nsec - t1.tv_nsec) / 1e9;
  printf("%zu %.3f %.3f\n", deleted, dump_s, delete_s);
  mnl_socket_close(nl);
  return 0;
}

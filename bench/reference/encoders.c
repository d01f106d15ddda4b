/*
 * The two ways to write a purge's batched DELETE (tuple, zone, id), timed on the same
 * 262,144 entries: the tuple attribute echoed as the kernel wrote it (ctpurge's
 * appendEntryRequest), and the request built by libnetfilter_conntrack from an nf_conntrack
 * object (nfct_new, nfct_set_attr_*, nfct_nlmsg_build, nfct_destroy per entry). No kernel:
 * message building only. Prints ns per request for each.
 *   cc -O2 -o encoders bench/reference/encoders.c -lnetfilter_conntrack -lmnl && ./encoders
 */
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N 262144
#define TUPLE_MAX 128

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static struct nlmsghdr* header(char* buf, uint16_t type, uint32_t seq) {
  struct nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | type;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  nlh->nlmsg_seq = seq;
  struct nfgenmsg* nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(struct nfgenmsg));
  nfg->nfgen_family = AF_INET;
  nfg->version = NFNETLINK_V0;
  nfg->res_id = 0;
  return nlh;
}

int main(void) {
  /* The entries as a dump gives them: a CTA_TUPLE_ORIG attribute each, and the fields parsed. */
  char* tuples = calloc(N, TUPLE_MAX);
  uint32_t *src = malloc(N * 4), *ids = malloc(N * 4);
  static char scratch[8192];
  for (uint32_t i = 0; i < N; i++) {
    src[i] = htonl(0x0a000000u | i);
    ids[i] = 0x1000 + i;
    memset(scratch, 0, sizeof scratch);
    struct nlmsghdr* nlh = mnl_nlmsg_put_header(scratch);
    struct nlattr* t = mnl_attr_nest_start(nlh, CTA_TUPLE_ORIG);
    struct nlattr* ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
    mnl_attr_put_u32(nlh, CTA_IP_V4_SRC, src[i]);
    mnl_attr_put_u32(nlh, CTA_IP_V4_DST, htonl(0x0a010001));
    mnl_attr_nest_end(nlh, ip);
    struct nlattr* proto = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
    mnl_attr_put_u8(nlh, CTA_PROTO_NUM, IPPROTO_UDP);
    mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(1000));
    mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(53));
    mnl_attr_nest_end(nlh, proto);
    mnl_attr_nest_end(nlh, t);
    memcpy(tuples + (size_t)i * TUPLE_MAX, t, t->nla_len);
  }
  char* batch = malloc(256 * 1024 + 4096);
  size_t used = 0, bytes = 0;
  for (int round = 0; round < 3; round++) {
    double t0 = now();
    used = 0;
    for (uint32_t i = 0; i < N; i++) {
      if (used > 256 * 1024) used = 0; /* a batch sent */
      char* buf = batch + used;
      memset(buf, 0, 128);
      struct nlmsghdr* nlh = header(buf, IPCTNL_MSG_CT_DELETE, i);
      const struct nlattr* t = (const struct nlattr*)(tuples + (size_t)i * TUPLE_MAX);
      memcpy(mnl_nlmsg_get_payload_tail(nlh), t, t->nla_len);
      nlh->nlmsg_len += MNL_ALIGN(t->nla_len);
      mnl_attr_put_u16(nlh, CTA_ZONE, htons(0));
      mnl_attr_put_u32(nlh, CTA_ID, htonl(ids[i]));
      used += nlh->nlmsg_len;
      bytes += nlh->nlmsg_len;
    }
    double echo = now() - t0;
    t0 = now();
    used = 0;
    for (uint32_t i = 0; i < N; i++) {
      if (used > 256 * 1024) used = 0;
      char* buf = batch + used;
      memset(buf, 0, 128);
      struct nlmsghdr* nlh = header(buf, IPCTNL_MSG_CT_DELETE, i);
      struct nf_conntrack* ct = nfct_new();
      nfct_set_attr_u8(ct, ATTR_L3PROTO, AF_INET);
      nfct_set_attr_u8(ct, ATTR_L4PROTO, IPPROTO_UDP);
      nfct_set_attr_u32(ct, ATTR_IPV4_SRC, src[i]);
      nfct_set_attr_u32(ct, ATTR_IPV4_DST, htonl(0x0a010001));
      nfct_set_attr_u16(ct, ATTR_PORT_SRC, htons(1000));
      nfct_set_attr_u16(ct, ATTR_PORT_DST, htons(53));
      nfct_set_attr_u16(ct, ATTR_ZONE, 0);
      if (nfct_nlmsg_build(nlh, ct) < 0) return 1;
      mnl_attr_put_u32(nlh, CTA_ID, htonl(ids[i])); /* 1.0.9 puts no CTA_ID */
      nfct_destroy(ct);
      used += nlh->nlmsg_len;
      bytes += nlh->nlmsg_len;
    }
    double nfct = now() - t0;
    printf("round %d: echo %.1f ns/request, libnetfilter_conntrack %.1f ns/request (%.1fx), %u requests\n", round + 1, echo * 1e9 / N, nfct * 1e9 / N,
           nfct / echo, N);
  }
  return bytes == 0;
}

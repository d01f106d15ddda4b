/** Protocol numbers, protocol state names and status bits, as the kernel numbers them. */

export const PROTOCOLS = {
  icmp: 1,
  tcp: 6,
  udp: 17,
  dccp: 33,
  gre: 47,
  icmpv6: 58,
  sctp: 132,
  udplite: 136,
} as const;

export type ProtocolName = keyof typeof PROTOCOLS;

const PROTOCOL_BY_NUMBER = new Map<number, ProtocolName>(
  Object.entries(PROTOCOLS).map(([name, n]) => [n, name as ProtocolName]),
);

export function protocolName(n: number): ProtocolName | number {
  return PROTOCOL_BY_NUMBER.get(n) ?? n;
}

/** enum tcp_conntrack */
export const TCP_STATES = ['NONE', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT', 'CLOSE_WAIT', 'LAST_ACK', 'TIME_WAIT', 'CLOSE', 'SYN_SENT2'] as const;
/** enum sctp_conntrack */
export const SCTP_STATES = ['NONE', 'CLOSED', 'COOKIE_WAIT', 'COOKIE_ECHOED', 'ESTABLISHED', 'SHUTDOWN_SENT', 'SHUTDOWN_RECD', 'SHUTDOWN_ACK_SENT', 'HEARTBEAT_SENT'] as const;
/** enum ct_dccp_states */
export const DCCP_STATES = ['NONE', 'REQUEST', 'RESPOND', 'PARTOPEN', 'OPEN', 'CLOSEREQ', 'CLOSING', 'TIMEWAIT'] as const;

/** The state names of a protocol that has states, by number; undefined for one that has none. */
export function statesOf(protocol: number): readonly string[] | undefined {
  return protocol === PROTOCOLS.tcp ? TCP_STATES : protocol === PROTOCOLS.sctp ? SCTP_STATES : protocol === PROTOCOLS.dccp ? DCCP_STATES : undefined;
}

export function stateName(protocol: number, state: number): string | null {
  const table = statesOf(protocol);
  if (!table || state === 0xff) return null;
  return table[state] ?? String(state);
}

/** Every state name ctpurge accepts, for messages. */
export const ALL_STATE_NAMES = [...new Set([...TCP_STATES, ...SCTP_STATES, ...DCCP_STATES])].filter((s) => s !== 'NONE');

/** IPS_* bits (include/uapi/linux/netfilter/nf_conntrack_common.h). */
export const STATUS_BITS = {
  expected: 0,
  seenReply: 1,
  assured: 2,
  confirmed: 3,
  srcNat: 4,
  dstNat: 5,
  seqAdjust: 6,
  srcNatDone: 7,
  dstNatDone: 8,
  dying: 9,
  fixedTimeout: 10,
  template: 11,
  natClash: 12,
  helper: 13,
  offload: 14,
  hwOffload: 15,
} as const;

export type StatusFlagName = keyof typeof STATUS_BITS;
export const IPS_SEEN_REPLY = 1 << STATUS_BITS.seenReply;
export const IPS_ASSURED = 1 << STATUS_BITS.assured;

/** Names as conntrack(8) spells them for -u, mapped to our flag names. */
export const CONNTRACK_STATUS_NAMES: Record<string, StatusFlagName> = {
  EXPECTED: 'expected',
  SEEN_REPLY: 'seenReply',
  ASSURED: 'assured',
  CONFIRMED: 'confirmed',
  SRC_NAT: 'srcNat',
  DST_NAT: 'dstNat',
  SEQ_ADJUST: 'seqAdjust',
  SRC_NAT_DONE: 'srcNatDone',
  DST_NAT_DONE: 'dstNatDone',
  DYING: 'dying',
  FIXED_TIMEOUT: 'fixedTimeout',
  TEMPLATE: 'template',
  NAT_CLASH: 'natClash',
  HELPER: 'helper',
  OFFLOAD: 'offload',
  HW_OFFLOAD: 'hwOffload',
};

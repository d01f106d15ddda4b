/** The whole native surface, typed in one place (the loader is src/addon.ts). */

export interface NativeCidr {
  family: number;
  addr: Uint8Array;
  prefix: number;
}

export interface NativeFilter {
  family: number;
  protocol?: number;
  hasStates: boolean;
  tcpStates: number;
  sctpStates: number;
  dccpStates: number;
  statusMask: number;
  statusValue: number;
  mark?: number;
  markMask?: number;
  /** The three zones of an entry, as conntrack -L shows them (zone=, zone-orig=, zone-reply=). */
  zone?: number;
  origZone?: number;
  replyZone?: number;
  src?: NativeCidr[];
  dst?: NativeCidr[];
  replySrc?: NativeCidr[];
  replyDst?: NativeCidr[];
  sport?: [number, number];
  dport?: [number, number];
  replySport?: [number, number];
  replyDport?: [number, number];
  olderThan?: number;
  idleFor?: number;
  /** NAT as the reply tuple shows it (see Query.srcNat): true, or false for "not". */
  srcNat?: boolean;
  dstNat?: boolean;
  anyNat?: boolean;
  /** 16 bytes, bit i of label i: every bit set here must be set in the entry's labels. */
  labels?: Uint8Array;
  /** Entry ids (not a query field): a grace's settle counts which of its entries are left. */
  ids?: Uint32Array;
  /** Exclusions: an entry that matches any of them never matches (an unknown time counts as a match). */
  except?: NativeFilter[];
}

/** What a dump or flush request asks the kernel to filter by (native KernelFilter, the same name in C++); every field optional. */
export interface KernelFilter {
  /** 0: both families. */
  family: number;
  status?: number;
  statusMask?: number;
  mark?: number;
  markMask?: number;
  /** The kernel compares a zone's id in either direction (nf_ct_zone_equal_any). */
  zone?: number;
  /** CTA_FILTER (an exact tuple): protocol, TCP/UDP ports, IPv4 addresses (4 bytes). */
  protocol?: number;
  sport?: number;
  dport?: number;
  src?: Uint8Array;
  dst?: Uint8Array;
  replySrc?: Uint8Array;
  replyDst?: Uint8Array;
}

/** One lane of a plan (src/plan.ts): its request's kernel filter, and the filter every entry it sends is checked against. */
export interface NativeLane {
  kernel: KernelFilter;
  match: NativeFilter;
  /** Read the dump ahead on a thread of its own (a dump lane planned for 2 threads). */
  readAhead?: boolean;
}

export interface NativeEntrySpec {
  family: number;
  protocol: number;
  src: Uint8Array;
  dst: Uint8Array;
  sport?: number;
  dport?: number;
  icmpType?: number;
  icmpCode?: number;
  icmpId?: number;
  replySrc?: Uint8Array;
  replyDst?: Uint8Array;
  replySport?: number;
  replyDport?: number;
  zone?: number;
  /** A zone of one direction (CTA_TUPLE_ZONE); a reply zone only on create. */
  origZone?: number;
  replyZone?: number;
  id?: number;
  state?: number;
  timeout?: number;
  status?: number;
  mark?: number;
  labels?: Uint8Array;
}

export interface NativeCpuStats {
  cpu: number;
  found: number;
  invalid: number;
  insert: number;
  insertFailed: number;
  drop: number;
  earlyDrop: number;
  error: number;
  searchRestart: number;
  clashResolve: number;
  chainTooLong: number;
}

export interface NativeStats {
  count: number;
  max: number;
  cpus: NativeCpuStats[];
}

export interface NativeTimeouts {
  tcp: Record<string, number>;
  udp: { unreplied: number; stream: number };
  icmp: number;
  icmpv6: number;
  generic: number;
  /** How many timeout policies the namespace has (nft ct timeout, cttimeout objects). */
  policies: number;
}

export interface NativeSettings {
  timeouts: NativeTimeouts;
  sysctl: Partial<Record<'timestamp' | 'acct' | 'tcp_loose' | 'tcp_be_liberal' | 'buckets' | 'max', number>>;
}

export interface NativePurgeOptions {
  dryRun: boolean;
  limit?: number;
  wantEntries: boolean;
  /** Seconds: give each match this timeout (an update) instead of deleting it. */
  grace?: number;
  /** With grace: resolve with the ids of the entries given it (gracedIds). */
  collectGraced?: boolean;
  /** Write-ahead audit log: each batch's NDJSON lines are written here before it is deleted (in a dry run, the matches'). */
  logFd?: number;
  /** An audit log (not an export): each NDJSON line gets "time" and then these members (",\"run\":..."). */
  logTag?: string;
  cancel?: Int32Array;
}

/** The list export: the lanes' matches as text lines on fd. */
export interface NativeExportOptions {
  fd: number;
  format: 'ndjson' | 'conntrack' | 'table';
  limit?: number;
  cancel?: Int32Array;
}

export interface NativeExportCounts {
  /** Lines written (table rows, header not counted). */
  written: number;
  cancelled: boolean;
  limitReached: boolean;
  /** Set when a write failed (negative errno, its name): the export stopped there. */
  writeErrno?: number;
  writeCode?: string;
}

export interface NativePurgeCounts {
  scanned: number;
  matched: number;
  deleted: number;
  vanished: number;
  batches: number;
  method: 'flush' | 'dump';
  cancelled: boolean;
  limitReached: boolean;
  lostReports: number;
  /** Audit lines written (with logFd). */
  logged: number;
  /** With grace: entries given it, and matches left as they are (fixed timeout, offloaded, due sooner). */
  graced: number;
  fixedTimeout: number;
  offloaded: number;
  expiring: number;
  /** With collectGraced. */
  gracedIds?: Uint32Array;
  /** Set when an audit log write failed (negative errno, its name): no delete was sent after it. */
  logErrno?: number;
  logCode?: string;
}

export interface NativeCursor<T = ArrayBuffer> {
  /** Resolves with packed entry records (see entry.ts) or NDJSON text, or null at the end. */
  next(): Promise<T | null>;
  close(): void;
}

/** A batch of events: records with the event type in byte 23, and how many overflows were seen. */
export interface NativeEventRecords {
  records: ArrayBuffer;
  lost: number;
}

/** A batch of events as the lines `ctpurge watch` prints, and how many overflows were seen. */
export interface NativeEventText {
  text: Buffer;
  lost: number;
}

export interface NativeEventCursor<T = NativeEventRecords> {
  /** Resolves with the next batch (empty after an idle poll slice), or null once closed. */
  next(): Promise<T | null>;
  close(): void;
}

/** Addresses with exact counts, largest first (ties: family, then address bytes). */
export interface NativeTalkers {
  families: Uint8Array;
  /** 16 bytes per address (IPv4 in the first 4). */
  addrs: Uint8Array;
  counts: Float64Array;
}

export interface NativeNames {
  protocols: Record<string, number>;
  tcp: string[];
  sctp: string[];
  dccp: string[];
  /** IPS_* bit names, in bit order. */
  status: string[];
  ageSources: string[];
}

export interface NativeSummaryOptions {
  talkers: boolean;
  top?: number;
  capacity?: number;
  memory?: number;
  /** Set [0] to 1 (Atomics.store, a SharedArrayBuffer) to stop the dumps: resolves { cancelled: true }. */
  cancel?: Int32Array;
}

/** One summary pass (native/summaryWorker.cc). */
export interface NativeSummary {
  total: number;
  unreplied: number;
  /** Entries per protocol number (256). */
  protocols: Float64Array;
  /** Entries per kernel state number (32 each). */
  states: { tcp: Float64Array; sctp: Float64Array; dccp: Float64Array };
  ipv4: number;
  ipv6: number;
  /** unknown, timestamp, timeout */
  ageSources: Float64Array;
  /** DURATION_BUCKETS, then unknown. */
  idle: Float64Array;
  age: Float64Array;
  /** The summary's CANDIDATES, in order. */
  candidates: Float64Array;
  /** [protocol, port, count] triplets. */
  dports: Float64Array;
  /** Rows of [protocol, state (255: none), reply kind (0 unreplied, 1 assured, 2 replied), idle buckets (8), age buckets (8)]. */
  classes: Float64Array;
  sources: NativeTalkers;
  destinations: NativeTalkers;
  /** 0 when every address was counted in one pass; else total / heavy-hitter counters per lane. */
  exactAbove: number;
  /** True when options.cancel stopped the dumps: then no other field is set. */
  cancelled?: true;
}

export interface NativeHandle {
  stats(): Promise<NativeStats>;
  /**
   * The table summary over the lanes. Talkers (the `top` largest, 10 by default) are counted
   * exactly in `memory` bytes (96 MiB); past it, heavy hitters (`capacity` counters per lane,
   * 16,384) and a second pass that counts them exactly.
   */
  summary(lanes: readonly NativeLane[], options: NativeSummaryOptions): Promise<NativeSummary>;
  /** Counts over the plan's lanes, dumped in parallel. */
  count(lanes: readonly NativeLane[]): Promise<number>;
  get(spec: NativeEntrySpec): Promise<ArrayBuffer | null>;
  create(spec: NativeEntrySpec): Promise<void>;
  delete(spec: NativeEntrySpec): Promise<boolean>;
  /** Policy timeouts and a few per-namespace sysctls (timestamp, acct, tcp_loose, ...). */
  settings(): Promise<NativeSettings>;
  dump(lane: NativeLane, chunkSize: number, format?: 'records'): NativeCursor<ArrayBuffer>;
  dump(lane: NativeLane, chunkSize: number, format: 'ndjson'): NativeCursor<Buffer>;
  /**
   * Executes a plan: 'flush' sends one filtered flush request per lane (refused with options
   * that need each entry, and for a request without a condition); 'dump' dumps the lanes in
   * parallel, matches and deletes.
   */
  purge(
    method: 'flush' | 'dump',
    lanes: readonly NativeLane[],
    options: NativePurgeOptions,
    onProgress?: (counts: NativePurgeCounts, records: ArrayBuffer | undefined) => void,
  ): Promise<NativePurgeCounts>;
  /** Writes the lanes' matches to fd as text lines, on the dump threads; sends nothing that changes the table. */
  export(lanes: readonly NativeLane[], options: NativeExportOptions): Promise<NativeExportCounts>;
  /** groups: bit 0 new, bit 1 update, bit 2 destroy. */
  events(match: NativeFilter, groups: number, receiveBuffer: number, format?: 'records'): NativeEventCursor;
  /** The same as text: NDJSON ({"type":"new","entry":{...}}) or `[NEW] ` and a `conntrack -L` line. */
  events(match: NativeFilter, groups: number, receiveBuffer: number, format: 'ndjson' | 'conntrack', timestamps?: boolean): NativeEventCursor<NativeEventText>;
  close(): void;
  /** The inode of the namespace file opened (what the handle works in); null for the process's own. */
  inode(): number | null;
}

export interface NativeTimeoutTable {
  tcp?: number[];
  sctp?: number[];
  dccp?: number[];
  udp?: number;
  udpStream?: number;
  icmp?: number;
  icmpv6?: number;
  generic?: number;
  gre?: number;
  greStream?: number;
  /** Timeout policies: each one protocol's values, candidates beside the sysctls. */
  policies?: NativeTimeoutTable[];
}

export interface NativeBinding {
  /** Opens a handle on the namespace file at path, or on the caller's namespace. */
  open(netnsPath: string | null): Promise<NativeHandle>;
  /** The age estimate from seconds left and policy timeouts; null when unknown. */
  estimateAge(protocol: number, family: number, state: number, secondsLeft: number, timeouts: NativeTimeoutTable): number | null;
  /**
   * Packed records (recordSize bytes each) through the addon's line writers, as list, the
   * audit log and watch write them (the table laid out as one); for the formats' unit tests.
   */
  formatRecords(records: Uint8Array, format: 'ndjson' | 'conntrack' | 'table', nowMs: number): string;
  recordSize: number;
  /** The name tables the native text formats print (a unit test holds src/protocols.ts to them). */
  names: NativeNames;
  /** flock(2) on path, waiting up to waitMs; resolves with the fd. Rejects with code ELOCKED and holderPid. */
  lockFile(path: string, waitMs: number): Promise<number>;
  /** Closes the fd, releasing the lock. */
  unlockFile(fd: number): void;
  /** A daemon's pid file (0644, its pid inside), flock'd for its life. Throws ELOCKED with holderPid. */
  lockPidFile(path: string): number;
}

/// <reference types="node" preserve="true" />
export { Conntrack } from './conntrack.js';
export type {
  OpenOptions,
  ExportOptions,
  ListOptions,
  ConntrackStats,
  CpuStats,
  ConntrackSettings,
  PurgeOptions,
  PurgeProgress,
  PurgeResult,
  ConntrackEvent,
  EventCounts,
  EventLines,
  EventLinesOptions,
  EventType,
  EventsOptions,
} from './conntrack.js';
export type { Entry, Tuple, StatusFlags, Counters, AgeSource, IdleSource } from './entry.js';
export { RECORD_SIZE, decodeRecord } from './entry.js';
export type { TupleSpec, CreateSpec } from './entrySpec.js';
export { AbortError, ConntrackError, type ConntrackErrorInit, type PartialResult } from './errors.js';
export { compileQuery, type Query, type MarkQuery, type CompiledQuery } from './query.js';
export { planQuery, isQueryPlan, type QueryPlan, type PlanOptions } from './plan.js';
export { parseDuration, formatDuration } from './parse/duration.js';
export { parseCidr, type Cidr, type Family } from './parse/address.js';
export { parsePortRange, type PortRange } from './parse/port.js';
export { kernelFeatures, type KernelFeatures } from './kernel.js';
export type { TableSummary, Ranked, Candidate } from './summary.js';
export { DURATION_BUCKETS } from './summary.js';
export { Purger, nextInterval, type PurgeTarget, type PurgerOptions, type PurgerRun, type AdaptiveState } from './purger.js';
export { acquirePurgeLock, type PurgeLock } from './lock.js';
export { PurgeMetrics } from './metrics.js';
export { nativeAddonPath } from './addon.js';
export type { NamespaceInfo, NamespaceSources, ContainerInfo } from './namespaces.js';

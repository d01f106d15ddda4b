/** What the running kernel's ctnetlink can filter itself, by version (docs/kernel-filters.md). */
import os from 'node:os';

export interface KernelFeatures {
  release: string;
  /** CTA_STATUS/CTA_STATUS_MASK in dumps and flushes: 5.15. Before that a "status" flush wipes everything. */
  statusFilter: boolean;
  /** CTA_ZONE in dumps and flushes: 6.8. */
  zoneFilter: boolean;
  /**
   * CTA_ZONE with zone 0: the first form of the zone filter skipped it (a "zone 0" flush
   * flushed every zone); fixed during the 6.8 release candidates. Trusted from 6.9.
   */
  zoneZeroFilter?: boolean;
  /**
   * CTA_MARK with a partial CTA_MARK_MASK: 5.8 as released skipped entries that matched under
   * the mask ("fix mark based dump filtering regression", 5.9 and later 5.8.y). Not trusted on 5.8.
   */
  maskedMarkFilter?: boolean;
  /** CTA_FILTER (exact protocol, TCP/UDP ports, IPv4 addresses) in dumps: 5.8. */
  tupleDumpFilter: boolean;
  /** CTA_FILTER in flushes: 6.12. Before it the same DELETE is refused or read as a delete of one tuple. */
  tupleFlushFilter: boolean;
  /** false when CTPURGE_NO_KERNEL_FILTER=1: everything is matched in user space, no flush. */
  kernelFilters: boolean;
}

export function parseKernelVersion(release: string): [number, number] | null {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? [Number(m[1]), Number(m[2])] : null;
}

function atLeast(v: [number, number] | null, major: number, minor: number): boolean {
  if (!v) return false;
  return v[0] > major || (v[0] === major && v[1] >= minor);
}

export function kernelFeatures(release = os.release(), env: NodeJS.ProcessEnv = process.env): KernelFeatures {
  const v = parseKernelVersion(release);
  const kernelFilters = !['1', 'true', 'yes'].includes((env.CTPURGE_NO_KERNEL_FILTER ?? '').toLowerCase());
  return {
    release,
    statusFilter: kernelFilters && atLeast(v, 5, 15),
    zoneFilter: kernelFilters && atLeast(v, 6, 8),
    zoneZeroFilter: kernelFilters && atLeast(v, 6, 9),
    maskedMarkFilter: kernelFilters && !(v !== null && v[0] === 5 && v[1] === 8),
    tupleDumpFilter: kernelFilters && atLeast(v, 5, 8),
    tupleFlushFilter: kernelFilters && atLeast(v, 6, 12),
    kernelFilters,
  };
}

/** What the running kernel's ctnetlink can filter itself (see KERNEL-NOTES). */
import os from 'node:os';

export interface KernelFeatures {
  release: string;
  /** CTA_STATUS/CTA_STATUS_MASK in dumps and flushes: 5.15. Before that a "status" flush wipes everything. */
  statusFilter: boolean;
  /** CTA_ZONE in dumps and flushes: 6.8. */
  zoneFilter: boolean;
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
    kernelFilters,
  };
}

/** Independent expectations: what a query should select from the seed model, computed without ctpurge's own parsers. */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { BlockList, isIPv4 } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Conntrack, ExportOptions, Query } from '../../src/index.js';
import type { SeedEntry } from './seed.js';

export function inCidr(addr: string, cidr: string): boolean {
  const [net, len] = cidr.split('/');
  const type = isIPv4(net as string) ? 'ipv4' : 'ipv6';
  if (isIPv4(addr) !== (type === 'ipv4')) return false;
  const bl = new BlockList();
  bl.addSubnet(net as string, Number(len ?? (type === 'ipv4' ? 32 : 128)), type);
  return bl.check(addr, type);
}

/** The age a correct estimate gives seed entries (policy timeout - seconds left), at creation. */
export function seedAge(e: SeedEntry): number {
  if (e.proto === 'tcp') return e.timeout > 300 ? 432000 - e.timeout : 300 - e.timeout;
  return e.timeout <= 30 ? 30 - e.timeout : 120 - e.timeout;
}

export function key(e: { src: string; dst: string; sport?: number; dport?: number; zone: number }): string {
  return `${e.src}|${e.dst}|${e.sport}|${e.dport}|${e.zone}`;
}

/**
 * Where each cell of a `ctpurge list` table line starts (cells are two or more spaces apart),
 * without the header's empty destination column: comparable between the header and the rows.
 */
export function columnStarts(line: string, header = false): number[] {
  const starts = [...line.matchAll(/(?:^| {2,})(\S)/g)].map((m) => (m.index ?? 0) + m[0].length - 1);
  return header ? starts : starts.filter((_, i) => i !== 3);
}

/** What ct.exportTo() writes, through a private temporary file: its count and its lines. */
export async function exportLines(ct: Conntrack, query: Query = {}, options: ExportOptions = {}): Promise<{ n: number; lines: string[] }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-export-'));
  try {
    const file = path.join(dir, 'out');
    const fd = openSync(file, 'w', 0o600);
    try {
      const n = await ct.exportTo(fd, query, options);
      return { n, lines: readFileSync(file, 'utf8').split('\n').filter(Boolean) };
    } finally {
      closeSync(fd);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

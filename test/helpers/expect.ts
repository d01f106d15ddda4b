/** Independent expectations: what a query should select from the seed model, computed without ctpurge's own parsers. */
import { BlockList, isIPv4 } from 'node:net';
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

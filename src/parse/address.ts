/** IPv4/IPv6 addresses and CIDRs, as the 16-byte form the native layer uses. */
import { fieldError, typeName } from '../validate.js';

export type Family = 'ipv4' | 'ipv6';
export const AF_INET = 2;
export const AF_INET6 = 10;

export interface Cidr {
  family: Family;
  /** 16 bytes; IPv4 in the first 4. */
  addr: Uint8Array;
  prefix: number;
}

function parseIpv4(s: string): Uint8Array | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  const out = new Uint8Array(16);
  for (let i = 0; i < 4; i++) {
    const p = parts[i] as string;
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p.startsWith('0'))) return null;
    const n = Number(p);
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

function parseIpv6(input: string): Uint8Array | null {
  let s = input;
  const zone = s.indexOf('%');
  if (zone >= 0) return null;
  const groups: number[] = [];
  // An embedded IPv4 tail (::ffff:1.2.3.4) is two groups.
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.', lastColon)) {
    const v4 = parseIpv4(s.slice(lastColon + 1));
    if (!v4) return null;
    s = `${s.slice(0, lastColon + 1)}${(((v4[0] as number) << 8) | (v4[1] as number)).toString(16)}:${(((v4[2] as number) << 8) | (v4[3] as number)).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const parse = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = parse(halves[0] as string);
  const tail = halves.length === 2 ? parse(halves[1] as string) : [];
  if (!head || !tail) return null;
  if (halves.length === 2) {
    const fill = 8 - head.length - tail.length;
    if (fill < 1) return null;
    groups.push(...head, ...new Array<number>(fill).fill(0), ...tail);
  } else {
    if (head.length !== 8) return null;
    groups.push(...head);
  }
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  return out;
}

/** Parses an address; returns null when it is neither IPv4 nor IPv6. */
export function parseAddress(s: string): { family: Family; addr: Uint8Array } | null {
  if (s.includes(':')) {
    const a = parseIpv6(s);
    return a ? { family: 'ipv6', addr: a } : null;
  }
  const a = parseIpv4(s);
  return a ? { family: 'ipv4', addr: a } : null;
}

/** '10.0.0.0/8', '10.1.2.3', '2001:db8::/32'. Host bits are masked off, like --mask-src. */
export function parseCidr(value: unknown, name = 'address'): Cidr {
  if (typeof value !== 'string') throw fieldError(TypeError, name, `expected an address or CIDR string, got ${typeName(value)}`);
  if (value.length > 64) throw fieldError(RangeError, name, `address is too long`);
  const slash = value.indexOf('/');
  const host = slash >= 0 ? value.slice(0, slash) : value;
  const parsed = parseAddress(host);
  if (!parsed) throw fieldError(RangeError, name, `${JSON.stringify(value)} is not an IPv4 or IPv6 address or CIDR`);
  const max = parsed.family === 'ipv4' ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = value.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) {
      throw fieldError(RangeError, name, `prefix length in ${JSON.stringify(value)} must be 0-${max}`);
    }
    prefix = Number(p);
  }
  const addr = new Uint8Array(parsed.addr);
  for (let bit = prefix; bit < 128; bit++) addr[bit >> 3] = (addr[bit >> 3] as number) & ~(0x80 >> (bit & 7));
  return { family: parsed.family, addr, prefix };
}

export function formatIpv4(b: Uint8Array, off = 0): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

/** RFC 5952 text form: lower case, longest run of zero groups (>= 2) as '::'. */
export function formatIpv6(b: Uint8Array, off = 0): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(((b[off + i * 2] as number) << 8) | (b[off + i * 2 + 1] as number));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) return g.map((x) => x.toString(16)).join(':');
  const left = g.slice(0, bestStart).map((x) => x.toString(16)).join(':');
  const right = g.slice(bestStart + bestLen).map((x) => x.toString(16)).join(':');
  return `${left}::${right}`;
}

export function formatCidr(c: Cidr): string {
  const text = c.family === 'ipv4' ? formatIpv4(c.addr) : formatIpv6(c.addr);
  return c.prefix === (c.family === 'ipv4' ? 32 : 128) ? text : `${text}/${c.prefix}`;
}

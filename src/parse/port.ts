/** Ports and port ranges: 80, [1000, 2000], '80', '1000-2000'. */
import { fieldError, typeName } from '../validate.js';

export type PortRange = [number, number];

function port(n: unknown, name: string): number {
  if (typeof n !== 'number' || !Number.isInteger(n)) throw fieldError(TypeError, name, `expected a port number 0-65535, got ${typeName(n)}`);
  if (n < 0 || n > 65535) throw fieldError(RangeError, name, `port ${n} is outside 0-65535`);
  return n;
}

export function parsePortRange(value: unknown, name = 'port'): PortRange {
  if (typeof value === 'number') {
    const p = port(value, name);
    return [p, p];
  }
  if (typeof value === 'string') {
    const m = /^(\d{1,5})(?:[-:](\d{1,5}))?$/.exec(value.trim());
    if (!m) throw fieldError(RangeError, name, `${JSON.stringify(value.slice(0, 40))} is not a port or a range like 1000-2000`);
    const lo = port(Number(m[1]), name);
    const hi = m[2] === undefined ? lo : port(Number(m[2]), name);
    if (lo > hi) throw fieldError(RangeError, name, `range ${lo}-${hi} is reversed`);
    return [lo, hi];
  }
  if (Array.isArray(value)) {
    if (value.length !== 2) throw fieldError(TypeError, name, `a range is [from, to]`);
    const lo = port(value[0], name);
    const hi = port(value[1], name);
    if (lo > hi) throw fieldError(RangeError, name, `range [${lo}, ${hi}] is reversed`);
    return [lo, hi];
  }
  throw fieldError(TypeError, name, `expected a port or [from, to], got ${typeName(value)}`);
}

/** Where a --netns / { netns } value points. */
import { fieldError, typeName } from './validate.js';

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

/**
 * 'blue' -> '/var/run/netns/blue'; absolute paths such as /proc/PID/ns/net are kept.
 * Rejects NUL bytes, '..' segments, relative paths and names ip(8) would not make. The
 * native side then checks that the file really is a network namespace.
 */
export function resolveNetns(value: unknown, name = 'netns'): string {
  if (typeof value !== 'string') throw fieldError(TypeError, name, `expected a namespace name or path, got ${typeName(value)}`);
  if (value.length === 0) throw fieldError(RangeError, name, `empty namespace name`);
  if (value.includes('\0')) throw fieldError(RangeError, name, `contains a NUL byte`);
  if (value.length > 4096) throw fieldError(RangeError, name, `path is too long`);
  if (value.includes('/')) {
    if (!value.startsWith('/')) throw fieldError(RangeError, name, `a path must be absolute, like /proc/PID/ns/net or /var/run/netns/NAME`);
    if (value.split('/').some((seg) => seg === '..' || seg === '.')) throw fieldError(RangeError, name, `'.' and '..' are not allowed in the path`);
    return value;
  }
  if (!NAME.test(value) || value === '.' || value === '..') {
    throw fieldError(RangeError, name, `${JSON.stringify(value.slice(0, 40))} is not a valid namespace name (letters, digits, '_', '.', '-'; at most 64)`);
  }
  return `/var/run/netns/${value}`;
}

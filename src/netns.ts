/** Where a --netns / { netns } value points. */
import type { NamespaceInfo } from './namespaces.js';
import { fieldError, integerField, typeName } from './validate.js';

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

/**
 * A namespace that Conntrack.namespaces() found, as { netns } takes it: its own name, path and
 * inode, checked (a look-alike object is read field by field, never trusted).
 */
export function namespaceField(value: object, name = 'netns'): NamespaceInfo {
  const v = value as Partial<Record<keyof NamespaceInfo, unknown>>;
  const own = (k: keyof NamespaceInfo) => (Object.hasOwn(value, k) ? v[k] : undefined);
  const path = own('path');
  if (typeof path !== 'string' || !path.startsWith('/')) throw fieldError(TypeError, `${name}.path`, `expected a namespace's absolute path, got ${typeName(path)}`);
  const label = own('name');
  if (typeof label !== 'string' || label === '') throw fieldError(TypeError, `${name}.name`, `expected the namespace's name, got ${typeName(label)}`);
  const startTime = own('startTime');
  return {
    name: label,
    path: resolveNetns(path, `${name}.path`),
    inode: integerField(own('inode'), `${name}.inode`, 1, Number.MAX_SAFE_INTEGER),
    ...(startTime === undefined ? {} : { startTime: integerField(startTime, `${name}.startTime`, 0, Number.MAX_SAFE_INTEGER) }),
  };
}

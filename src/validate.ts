import { nearest } from './parse/nearest.js';

/**
 * The one reading of every option object the library takes (queries, purge, list, events,
 * schedule, open, create): own enumerable properties only, so neither an inherited field nor
 * a polluted Object.prototype can add a condition or lift the empty-query refusal; unknown
 * keys are named; wrong types are named with the field.
 */

/**
 * A TypeError or RangeError about one field of an option object: the message starts with the
 * field (`dport: port 70000 is outside 0-65535`); `field` names it and `reason` is the rest,
 * so the CLI can put its own option name in its place.
 */
export function fieldError<E extends TypeErrorConstructor | RangeErrorConstructor>(Kind: E, field: string, message: string): InstanceType<E> & FieldInfo {
  const err = Object.assign(new Kind(`${field}: ${message}`), { field, reason: message });
  Error.captureStackTrace(err, fieldError);
  return err as InstanceType<E> & FieldInfo;
}

export interface FieldInfo {
  field: string;
  reason: string;
}

/** The field a validation error is about and why (see fieldError), if it says. */
export function errorField(err: unknown): FieldInfo | undefined {
  const { field, reason } = (err ?? {}) as { field?: unknown; reason?: unknown };
  return typeof field === 'string' && typeof reason === 'string' ? { field, reason } : undefined;
}

/** A short, safe description of a value for error messages (BigInt and symbols included). */
export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'number' && Number.isNaN(v)) return 'NaN';
  if (typeof v === 'bigint') return `bigint ${String(v).slice(0, 40)}n`;
  if (typeof v === 'symbol' || typeof v === 'function' || typeof v === 'undefined') return typeof v;
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)?.slice(0, 40) ?? ''}`.trim();
}

function nearestHint(key: string, allowed: readonly string[]): string {
  const near = nearest(key, allowed);
  return near ? ` (did you mean '${near}'?)` : '';
}

/**
 * The own enumerable properties of an options object, in a null-prototype record: nothing
 * else is ever read. Throws TypeError for a non-object (field: what) and for a key not in
 * `allowed` (field: the key; `nested`: the object is the field `what` of the options, such as
 'mark', and the key is named with that path, 'mark.bogus').
 */
export function ownOptions<T extends object = Record<string, unknown>>(value: unknown, what: string, allowed: readonly string[], nested = false): T {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw fieldError(TypeError, what, `expected an object, got ${typeName(value)}`);
  }
  const out = Object.create(null) as Record<string, unknown>;
  for (const key of Object.keys(value)) {
    // The error is about the unknown key itself: its field is the key, as a caller would look it up.
    if (!allowed.includes(key)) throw fieldError(TypeError, nested ? `${what}.${key}` : key, `unknown field of ${what}${nearestHint(key, allowed)}`);
    out[key] = (value as Record<string, unknown>)[key];
  }
  return out as T;
}

/**
 * A copy without a prototype, for every internal object that is read by field (filters, lanes,
 * requests): a field it lacks reads undefined, never a polluted Object.prototype's.
 */
export function bare<T extends object>(fields: T): T {
  return Object.assign(Object.create(null) as T, fields);
}

/** An integer in [min, max], or a TypeError/RangeError naming the field. */
export function integerField(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw fieldError(TypeError, field, `expected an integer, got ${typeName(value)}`);
  if (value < min || value > max) throw fieldError(RangeError, field, `${value} is outside ${min}-${max}`);
  return value;
}

export function booleanField(value: unknown, field: string): boolean {
  if (typeof value !== 'boolean') throw fieldError(TypeError, field, `expected true or false, got ${typeName(value)}`);
  return value;
}

/** A count such as a limit: an integer, 0 or more. */
export function limitField(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw fieldError(TypeError, field, `expected an integer, got ${typeName(value)}`);
  if (value < 0) throw fieldError(RangeError, field, `must be 0 or more`);
  if (value > Number.MAX_SAFE_INTEGER) throw fieldError(RangeError, field, `${value} is more than ${Number.MAX_SAFE_INTEGER} (leave it out for no limit)`);
  return value;
}

/** An open file descriptor's number (not checked against the process's table). */
export function fdField(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0x7fffffff) throw fieldError(TypeError, field, `expected an open file descriptor, got ${typeName(value)}`);
  return value;
}

export function functionField(value: unknown, field: string): (...args: never[]) => unknown {
  if (typeof value !== 'function') throw fieldError(TypeError, field, `expected a function, got ${typeName(value)}`);
  return value as (...args: never[]) => unknown;
}

export function signalField(value: unknown, field: string): AbortSignal {
  if (!(value instanceof AbortSignal)) throw fieldError(TypeError, field, `expected an AbortSignal, got ${typeName(value)}`);
  return value;
}

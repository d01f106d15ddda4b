/** Durations: seconds as a number, or strings like '3600', '90s', '90m', '1h', '2d', '1h30m'. */
import { fieldError, typeName } from '../validate.js';

const UNIT_SECONDS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** Ten years: anything longer is a typo, and no conntrack timeout gets near it. */
export const MAX_DURATION_SECONDS = 10 * 365 * 86400;

const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/gy;

/**
 * Parses a duration into seconds. Throws TypeError for a wrong type and RangeError for a
 * string that is not a duration or a value out of range; `name` names the option in the message.
 */
export function parseDuration(value: unknown, name = 'duration'): number {
  let seconds: number;
  if (typeof value === 'number') {
    seconds = value;
  } else if (typeof value === 'string') {
    const s = value.trim();
    if (s.length === 0 || s.length > 64) throw fieldError(RangeError, name, `expected a duration such as 3600, 90m, 1h or 2d, got ${JSON.stringify(value.slice(0, 40))}`);
    if (/^\d+(?:\.\d+)?$/.test(s)) {
      seconds = Number(s);
    } else {
      seconds = 0;
      PART.lastIndex = 0;
      let matched = 0;
      // Each unit once, largest first ('1h30m', not '1h1h' or '30m1h'): anything else is a typo.
      let lastUnit = Infinity;
      for (let m = PART.exec(s); m !== null; m = PART.exec(s)) {
        const unit = UNIT_SECONDS[m[2] as string] as number;
        if (unit >= lastUnit) throw fieldError(RangeError, name, `${JSON.stringify(s)} is not a duration: give each unit once, largest first (e.g. 1h30m)`);
        lastUnit = unit;
        seconds += Number(m[1]) * unit;
        matched = PART.lastIndex;
      }
      if (matched !== s.length) {
        throw fieldError(RangeError, name, `${JSON.stringify(s)} is not a duration (examples: 3600, 90m, 1h, 2d)`);
      }
    }
  } else {
    throw fieldError(TypeError, name, `expected seconds (number) or a duration string, got ${typeName(value)}`);
  }
  if (!Number.isFinite(seconds)) throw fieldError(RangeError, name, `must be a finite number of seconds`);
  if (seconds < 0) throw fieldError(RangeError, name, `must not be negative`);
  if (seconds > MAX_DURATION_SECONDS) throw fieldError(RangeError, name, `${seconds} s is more than ten years`);
  return seconds;
}

/** 3725 -> '1h2m5s'; used in output. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  let s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const parts: string[] = [];
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join('');
}

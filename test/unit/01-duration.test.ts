import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatDuration, MAX_DURATION_SECONDS, parseDuration } from '../../src/parse/duration.js';

describe('parseDuration', () => {
  it.each([
    [3600, 3600],
    ['3600', 3600],
    ['90s', 90],
    ['90m', 5400],
    ['1h', 3600],
    ['2d', 172800],
    ['1w', 604800],
    ['1h30m', 5400],
    ['500ms', 0.5],
    [' 5m ', 300],
    [0, 0],
  ])('%j -> %d s', (input, seconds) => {
    expect(parseDuration(input)).toBe(seconds);
  });

  it.each(['', '5x', '-5', '1h-', 'h', '1.2.3', '1e3', 'NaN', '5 m', '1hh'])('rejects %j with a RangeError naming the option', (bad) => {
    expect(() => parseDuration(bad, '--older')).toThrow(RangeError);
    expect(() => parseDuration(bad, '--older')).toThrow(/--older/);
  });

  it.each([-1, NaN, Infinity, -Infinity, MAX_DURATION_SECONDS + 1])('rejects the number %d', (bad) => {
    expect(() => parseDuration(bad, 'olderThan')).toThrow(RangeError);
  });

  it.each([null, undefined, {}, [], true])('rejects %j with a TypeError', (bad) => {
    expect(() => parseDuration(bad, 'olderThan')).toThrow(TypeError);
  });

  it('round-trips whole seconds through formatDuration for any unit mix', () => {
    fc.assert(
      fc.property(fc.nat({ max: 3649 }), fc.nat({ max: 23 }), fc.nat({ max: 59 }), fc.nat({ max: 59 }), (d, h, m, s) => {
        const text = `${d}d${h}h${m}m${s}s`;
        expect(parseDuration(text)).toBe(d * 86400 + h * 3600 + m * 60 + s);
      }),
    );
  });

  it('throws only TypeError or RangeError on arbitrary input', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.double(), fc.anything()), (v) => {
        try {
          const s = parseDuration(v);
          expect(s).toBeGreaterThanOrEqual(0);
          expect(s).toBeLessThanOrEqual(MAX_DURATION_SECONDS);
        } catch (err) {
          expect(err instanceof TypeError || err instanceof RangeError).toBe(true);
        }
      }),
    );
  });

  it('formats durations compactly', () => {
    expect(formatDuration(59)).toBe('59s');
    expect(formatDuration(3725)).toBe('1h2m');
    expect(formatDuration(424800)).toBe('4d22h');
    expect(formatDuration(NaN)).toBe('?');
  });
});

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatCidr, formatIpv4, formatIpv6, parseAddress, parseCidr } from '../../src/parse/address.js';
import { parsePortRange } from '../../src/parse/port.js';

describe('addresses and CIDRs', () => {
  it.each([
    ['10.0.0.0/8', 'ipv4', 8, '10.0.0.0/8'],
    ['10.1.2.3', 'ipv4', 32, '10.1.2.3'],
    ['10.1.2.3/8', 'ipv4', 8, '10.0.0.0/8'],
    ['0.0.0.0/0', 'ipv4', 0, '0.0.0.0/0'],
    ['2001:db8::/32', 'ipv6', 32, '2001:db8::/32'],
    ['::1', 'ipv6', 128, '::1'],
    ['::', 'ipv6', 128, '::'],
    ['fd00:0:0:0:0:0:0:1', 'ipv6', 128, 'fd00::1'],
    ['::ffff:192.0.2.1', 'ipv6', 128, '::ffff:c000:201'],
    ['2001:DB8:0:0:1:0:0:1', 'ipv6', 128, '2001:db8::1:0:0:1'],
  ])('%s', (input, family, prefix, text) => {
    const c = parseCidr(input, 'src');
    expect(c.family).toBe(family);
    expect(c.prefix).toBe(prefix);
    expect(formatCidr(c)).toBe(text);
  });

  it.each(['10.0.0.256', '10.0.0', '10.0.0.0/33', '::1/129', '1:2:3:4:5:6:7:8:9', '1::2::3', 'fe80::1%eth0', '010.0.0.1', 'host', '10.0.0.0/', '10.0.0.0/-1', ''])(
    'rejects %j naming the option',
    (bad) => {
      expect(() => parseCidr(bad, '--src')).toThrow(/--src/);
      expect(() => parseCidr(bad, '--src')).toThrow(RangeError);
    },
  );

  it('rejects non-strings with a TypeError', () => {
    expect(() => parseCidr(42, 'src')).toThrow(TypeError);
  });

  it('round-trips any IPv4 address', () => {
    fc.assert(
      fc.property(fc.ipV4(), (ip) => {
        const a = parseAddress(ip);
        expect(a?.family).toBe('ipv4');
        expect(formatIpv4(a!.addr)).toBe(ip);
      }),
    );
  });

  it('round-trips any IPv6 address through its RFC 5952 form', () => {
    fc.assert(
      fc.property(fc.ipV6(), (ip) => {
        const a = parseAddress(ip);
        expect(a?.family).toBe('ipv6');
        const text = formatIpv6(a!.addr);
        expect(Array.from(parseAddress(text)!.addr)).toEqual(Array.from(a!.addr));
        expect(text).toBe(text.toLowerCase());
      }),
    );
  });

  it('never throws anything but TypeError/RangeError', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (s) => {
        try {
          parseCidr(s);
        } catch (err) {
          expect(err instanceof RangeError || err instanceof TypeError).toBe(true);
        }
      }),
    );
  });
});

describe('ports', () => {
  it.each([
    [80, [80, 80]],
    ['80', [80, 80]],
    ['1000-2000', [1000, 2000]],
    [[1, 65535], [1, 65535]],
    ['0', [0, 0]],
  ])('%j', (input, range) => {
    expect(parsePortRange(input, 'dport')).toEqual(range);
  });

  it.each([65536, -1, 1.5, '70000', '2000-1000', 'http', [1], [2, 1], '', NaN, Infinity])('rejects %j', (bad) => {
    expect(() => parsePortRange(bad, '--dport')).toThrow(/--dport/);
  });

  it('accepts every valid range and rejects reversed ones', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 }), (a, b) => {
        if (a <= b) expect(parsePortRange(`${a}-${b}`)).toEqual([a, b]);
        else expect(() => parsePortRange([a, b])).toThrow(RangeError);
      }),
    );
  });
});

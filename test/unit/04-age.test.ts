/** The age and idle estimate from the timeout left (C++, through the addon): the worked cases of docs/api.md. */
import { describe, expect, it } from 'vitest';
import { loadNative } from '../../src/addon.js';

// The age estimate is C++ (it runs per entry inside the dump); this calls the same
// function through the addon, with the default policy timeouts given explicitly.
const tcp = [0, 120, 60, 432000, 120, 60, 30, 120, 10, 120, 0, 0, 300, 300];
const defaults = { tcp, udp: 30, udpStream: 120, icmp: 30, icmpv6: 30, generic: 600, gre: 30, greStream: 180 };
const ESTABLISHED = 3;

describe('age estimate (the worked cases of docs/api.md, Idle time and age)', () => {
  const { estimateAge } = loadNative();

  it('UNREPLIED ESTABLISHED with 424,800 s left is 7,200 s old', () => {
    expect(estimateAge(6, 2, ESTABLISHED, 424800, defaults)).toBe(7200);
  });

  it('a mid-stream pickup with 298 s left is 2 s old, never 5 days', () => {
    expect(estimateAge(6, 2, ESTABLISHED, 298, defaults)).toBe(2);
  });

  it('UDP with 600 s left under 30/120 s timeouts is unknown', () => {
    expect(estimateAge(17, 2, 0xff, 600, defaults)).toBeNull();
  });

  it('UDP picks the smallest timeout that fits', () => {
    expect(estimateAge(17, 2, 0xff, 25, defaults)).toBe(5);
    expect(estimateAge(17, 10, 0xff, 100, defaults)).toBe(20);
  });

  it('a TCP timeout set by hand above every policy is unknown', () => {
    expect(estimateAge(6, 2, ESTABLISHED, 500000, defaults)).toBeNull();
  });

  it('other protocols use the generic timeout; ICMP its own', () => {
    expect(estimateAge(99, 2, 0xff, 590, defaults)).toBe(10);
    expect(estimateAge(1, 2, 0xff, 29, defaults)).toBe(1);
    expect(estimateAge(58, 10, 0xff, 40, defaults)).toBeNull();
  });

  it('uses the namespace values it is given, not built-in defaults', () => {
    const lowered = { ...defaults, tcp: tcp.map((v, i) => (i === ESTABLISHED ? 3600 : v)) };
    expect(estimateAge(6, 2, ESTABLISHED, 3000, lowered)).toBe(600);
    expect(estimateAge(6, 2, ESTABLISHED, 424800, lowered)).toBeNull();
  });

  it('an RST leaves ESTABLISHED with timeout_close: 8 s left is 2 s idle, not 5 days', () => {
    expect(estimateAge(6, 2, ESTABLISHED, 8, defaults)).toBe(2);
  });

  it('a timeout policy shorter than the sysctl explains the seconds left (a busy flow under it)', () => {
    const est1h = { tcp: [0, 120, 60, 3600, 120, 60, 30, 120, 10, 120, 0, 0, 300, 300] };
    const withPolicy = { ...defaults, policies: [est1h] };
    // Without the policy, 3,599 s left reads as 5 days idle: the busy flow would be taken.
    expect(estimateAge(6, 2, ESTABLISHED, 3599, defaults)).toBe(428401);
    expect(estimateAge(6, 2, ESTABLISHED, 3599, withPolicy)).toBe(1);
    // Entries above the policy still get the sysctl's estimate.
    expect(estimateAge(6, 2, ESTABLISHED, 424800, withPolicy)).toBe(7200);
  });

  it('a policy for another protocol changes nothing; a generic policy covers the untracked protocols', () => {
    const udpPolicy = { udp: 3600, udpStream: 3600 };
    expect(estimateAge(6, 2, ESTABLISHED, 3599, { ...defaults, policies: [udpPolicy] })).toBe(428401);
    expect(estimateAge(17, 2, 0xff, 3599, { ...defaults, policies: [udpPolicy] })).toBe(1);
    expect(estimateAge(99, 2, 0xff, 500, { ...defaults, generic: 600, policies: [{ generic: 501 }] })).toBe(1);
  });

  it('DCCP takes its own timeouts (every state), and generic where the kernel has no DCCP tracking', () => {
    const dccp = [0, 240, 240, 480, 43200, 64, 64, 120];
    expect(estimateAge(33, 2, 4, 60, { ...defaults, dccp })).toBe(4);
    expect(estimateAge(33, 2, 4, 590, defaults)).toBe(10);
  });

  it('SCTP takes the timeout of its state', () => {
    const sctp = [0, 10, 3, 3, 210, 3, 3, 3, 30, 0];
    expect(estimateAge(132, 2, 4, 200, { ...defaults, sctp })).toBe(10);
    expect(estimateAge(132, 2, 4, 300, { ...defaults, sctp })).toBeNull();
  });
});

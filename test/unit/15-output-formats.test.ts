/** The CLI's text: conntrack -L lines and NDJSON (the TypeScript references), tables, and the purge's summary lines. */
import { describe, expect, it } from 'vitest';
import { TableWriter } from '../../src/cli/format.js';
import { graceOutcomeLine, purgeSummary } from '../../src/cli/purgeCommand.js';
import type { Entry } from '../../src/entry.js';
import { conntrackLine, jsonLine } from '../helpers/formats.js';

const entry: Entry = {
  id: 1,
  family: 'ipv4',
  protocol: 'tcp',
  protocolNumber: 6,
  state: 'ESTABLISHED',
  orig: { src: '10.1.0.1', dst: '192.0.2.80', sport: 40000, dport: 80 },
  reply: { src: '192.0.2.80', dst: '10.1.0.1', sport: 80, dport: 40000 },
  status: { raw: 8, expected: false, seenReply: false, assured: false, confirmed: true, srcNat: false, dstNat: false, seqAdjust: false, srcNatDone: false, dstNatDone: false, dying: false, fixedTimeout: false, template: false, natClash: false, helper: false, offload: false, hwOffload: false },
  unreplied: true,
  timeout: 424799,
  mark: 0,
  zone: 3,
  origZone: 0,
  replyZone: 0,
  labels: [],
  counters: null,
  start: null,
  age: 7201,
  ageSource: 'timeout',
  idle: 7201,
  idleSource: 'timeout',
};

describe('output formats', () => {
  it('prints conntrack -L shaped lines', () => {
    expect(conntrackLine(entry)).toBe(
      'tcp      6 424799 ESTABLISHED src=10.1.0.1 dst=192.0.2.80 sport=40000 dport=80 [UNREPLIED] src=192.0.2.80 dst=10.1.0.1 sport=80 dport=40000 mark=0 zone=3',
    );
  });

  it('prints NDJSON with the status as a list', () => {
    const o = JSON.parse(jsonLine(entry));
    expect(o.status).toEqual(['confirmed']);
    expect(o.orig.dport).toBe(80);
    expect(o).toMatchObject({ age: 7201, ageSource: 'timeout', idle: 7201, idleSource: 'timeout' });
    expect(JSON.parse(jsonLine({ ...entry, idle: null, idleSource: 'unknown' }))).toMatchObject({ idle: null, idleSource: 'unknown' });
  });

  it('adds delta-time like conntrack -L when the entry has a start timestamp', () => {
    const start = new Date(Date.UTC(2026, 10, 29, 12, 0, 0, 900));
    const now = Date.UTC(2026, 10, 29, 12, 1, 40, 100);
    // conntrack subtracts whole seconds: 12:01:40 - 12:00:00 = 100.
    expect(conntrackLine({ ...entry, start, age: 99.2, ageSource: 'timestamp' }, now)).toMatch(/ mark=0 zone=3 delta-time=100$/);
    expect(conntrackLine(entry, now)).not.toMatch(/delta-time/);
  });

  it('aligns table columns', () => {
    const t = new TableWriter(['A', 'B']);
    expect(t.format([['long-value', 'x']])).toBe('A           B\nlong-value  x\n');
  });

  it('summarises a purge in one line', () => {
    const r = { run: '0123456789ab', matched: 262144, deleted: 262144, vanished: 0, scanned: 262144, tableSize: 1048576, durationMs: 1900, method: 'dump' as const, dryRun: false, cancelled: false, limitReached: false, lostReports: 0, logged: 0, grace: null, graced: 0, fixedTimeout: 0, offloaded: 0, expiring: 0, settle: null };
    expect(purgeSummary(r)).toBe('purged 262,144 of 1,048,576 entries (262,144 matched, 0 vanished) in 1.90 s');
    expect(purgeSummary({ ...r, dryRun: true, deleted: 0 })).toMatch(/^would purge 262,144 of 1,048,576 entries \(dry run\)/);
    // Entries that arrived during the run: never "140,769 of 140,000".
    expect(purgeSummary({ ...r, tableSize: 140000, matched: 140769, deleted: 140769 })).toMatch(/^purged 140,769 entries \(the table held 140,000 when the run started\) \(140,769 matched, 0 vanished\)/);
    // A kernel flush counts nothing: the line says what its number is, and claims no matches.
    expect(purgeSummary({ ...r, method: 'flush' })).toBe('purged 262,144 of 1,048,576 entries (a kernel flush: the count is how much the table shrank) in 1.90 s');
  });

  it('summarises a grace: how many got it, what it left as it was, and what became of them', () => {
    const r = { run: '0123456789ab', matched: 1300, deleted: 0, vanished: 2, scanned: 5000, tableSize: 5000, durationMs: 420, method: 'dump' as const, dryRun: false, cancelled: false, limitReached: false, lostReports: 0, logged: 0, grace: 60, graced: 1200, fixedTimeout: 50, offloaded: 0, expiring: 48, settle: null };
    expect(purgeSummary(r)).toBe('gave 1,200 of 5,000 entries 60 s to show a packet (1,300 matched, 2 vanished; left as they are: 50 with a fixed timeout, 48 due to expire sooner) in 0.42 s');
    expect(purgeSummary({ ...r, dryRun: true, graced: 0, vanished: 0 })).toBe('would give 1,202 of 5,000 entries 60 s to show a packet (dry run, 1,300 matched; left as they are: 50 with a fixed timeout, 48 due to expire sooner) in 0.42 s');
    expect(graceOutcomeLine({ expired: 1187, alive: 13, complete: true })).toBe('after the grace: 1,187 expired, 13 proved alive');
    expect(graceOutcomeLine({ expired: 5, alive: 1195, complete: false })).toBe('the wait for the grace was cut short: 5 expired so far, 1,195 not yet');
  });
});

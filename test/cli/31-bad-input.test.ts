import { afterAll, beforeAll, expect, it } from 'vitest';
import { ctpurge } from '../helpers/cli.js';
import { describeKernel, TestNetns } from '../helpers/kernel.js';
import { mixedTable, seedLine } from '../helpers/seed.js';

describeKernel('bad input: exit 2, one line naming the option, table untouched', () => {
  let ns: TestNetns;
  let before: string[];
  // conntrack -L without the countdown field: the same entries, whatever second it is.
  const snapshot = () => ns.conntrackList().map((l) => l.replace(/^(\S+\s+\d+\s+)\d+/, '$1')).sort();
  beforeAll(() => {
    ns = TestNetns.create();
    // Nothing may expire while the cases run (the sanitizer build runs them minutes apart): the
    // short-lived kinds of the mixed table get an hour, so "untouched" means untouched.
    ns.load(mixedTable(400).map((e) => seedLine({ ...e, timeout: Math.max(e.timeout, 3600) })));
    before = snapshot();
  });
  afterAll(() => ns?.destroy());

  const cases: [string, (name: string) => string[], RegExp][] = [
    ['no selector at all', (n) => ['--netns', n], /refusing to purge without a selector/],
    ['only options, no selector', (n) => ['--netns', n, '--dry-run', '--json'], /without a selector/],
    ['bad duration', (n) => ['--unreplied', '--older', 'soon', '--netns', n], /--older/],
    ['negative duration', (n) => ['--unreplied', '--older', '-5', '--netns', n], /--older/],
    ['absurd duration', (n) => ['--unreplied', '--older', '99999999999', '--netns', n], /--older.*ten years/],
    ['NaN duration', (n) => ['--unreplied', '--older', 'NaN', '--netns', n], /--older/],
    ['Infinity duration', (n) => ['--unreplied', '--older', 'Infinity', '--netns', n], /--older/],
    ['bad CIDR', (n) => ['--src', '10.0.0.0/33', '--netns', n], /--src/],
    ['not an address', (n) => ['--dst', 'example.com', '--netns', n], /--dst/],
    ['family conflict', (n) => ['--family', 'ipv4', '--src', 'fd00::/8', '--netns', n], /--src/],
    ['bad port', (n) => ['--dport', '70000', '--netns', n], /--dport/],
    ['reversed range', (n) => ['--sport', '2000-1000', '--netns', n], /--sport/],
    ['bad state', (n) => ['--state', 'SLEEPING', '--netns', n], /--state/],
    ['unknown protocol', (n) => ['--proto', 'quic', '--netns', n], /--proto/],
    ['bad family', (n) => ['--family', 'inet', '--netns', n], /--family/],
    ['bad mark', (n) => ['--mark', 'red', '--netns', n], /--mark/],
    ['zone out of range', (n) => ['--zone', '65536', '--netns', n], /--zone/],
    ['unknown flag', (n) => ['--unreplied', '--frobnicate', '--netns', n], /unknown option --frobnicate/],
    ['missing value', (n) => ['--netns', n, '--unreplied', '--older'], /--older needs a value/],
    ['extra argument', (n) => ['--unreplied', 'now', '--netns', n], /unexpected argument 'now'/],
    ['unknown command', () => ['purgeall'], /unknown command/],
    ['nonexistent namespace', () => ['--unreplied', '--netns', 'ctp-no-such-namespace'], /--netns: no network namespace named/],
    ['path trick in --netns', () => ['--unreplied', '--netns', '/var/run/netns/../../../etc/passwd'], /--netns/],
    ['relative path in --netns', () => ['--unreplied', '--netns', 'x/y'], /--netns/],
    ['file that is not a namespace', () => ['--unreplied', '--netns', '/etc/hostname'], /--netns/],
    ['NUL byte in --netns', () => ['--unreplied', '--netns', 'a\u0001b'], /--netns/],
    ['oversized argument', (n) => ['--src', `10.0.0.1${','.repeat(5000)}`, '--netns', n], /longer than 4096/],
    ['oversized address list', (n) => ['--src', Array.from({ length: 1100 }, (_, i) => `10.0.${i >> 8}.${i & 255}`).join(',').slice(0, 4000), '--netns', n], /--src|longer/],
    ['log in a missing directory', (n) => ['--unreplied', '--older', '1h', '--netns', n, '--log', '/nonexistent-dir/x.ndjson'], /^ctpurge: --log: directory \/nonexistent-dir does not exist$/],
    // Checked before the table is touched, as --log is (it purged, then failed naming a temporary file).
    ['metrics file in a missing directory', (n) => ['--unreplied', '--older', '1h', '--netns', n, '--metrics-file', '/nonexistent-dir/m/x.prom'], /^ctpurge: --metrics-file: directory \/nonexistent-dir\/m does not exist$/],
    ['metrics file under a file', (n) => ['--unreplied', '--older', '1h', '--netns', n, '--metrics-file', '/etc/hostname/x.prom'], /^ctpurge: --metrics-file: cannot use \/etc\/hostname\/x.prom: ENOTDIR$/],
    ['pid file in a missing directory', (n) => ['--unreplied', '--older', '1h', '--every', '1h', '--netns', n, '--pid-file', '/nonexistent-dir/p.pid'], /^ctpurge: --pid-file: directory \/nonexistent-dir does not exist$/],
    ['log is a directory', (n) => ['--unreplied', '--older', '1h', '--netns', n, '--log', '/tmp'], /--log/],
    ['limit not a number', (n) => ['--unreplied', '--limit', 'ten', '--netns', n], /--limit/],
    ['option for another command', (n) => ['list', '--dry-run', '--netns', n], /--dry-run does not apply/],
    ['quiet and verbose', (n) => ['--unreplied', '-q', '-v', '--netns', n], /contradict/],
    ['repeated single option', (n) => ['--unreplied', '--older', '1h', '--older', '2h', '--netns', n], /given twice/],
  ];

  it.each(cases)('%s', (_name, args, message) => {
    const r = ctpurge(args(ns.name));
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^ctpurge: /);
    expect(lines[0]).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(snapshot()).toEqual(before);
  });
});

/**
 * conntrack's own selectors, side by side with conntrack -L on the same table: NAT as the
 * reply tuple shows it (-n, -g, -j) on real flows NATed by nft rules, status bits (-u), labels
 * (-l, names from connlabel.conf). Each is also checked against what the table
 * was built to hold, so two tools that agree on nothing can't pass.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Conntrack } from '../../src/index.js';
import { ctpurge } from '../helpers/cli.js';
import { describeKernel, TestNetns } from '../helpers/kernel.js';
import { BACKEND_A, BACKEND_B, CLIENT_IP, natLab, VIP, type NatLab } from '../helpers/natLab.js';

interface Listed {
  orig: { src: string; dst: string; sport: number; dport: number };
  status: Record<string, boolean>;
}

/** ctpurge list --json, keyed by original source port and destination port. */
function ctpurgeKeys(ns: TestNetns, args: string[], env: NodeJS.ProcessEnv = {}): Set<string> {
  const r = ctpurge(['list', '--netns', ns.name, '--json', ...args], env);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return new Set(r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Listed).map((e) => `${e.orig.sport}>${e.orig.dport}`));
}

/** conntrack -L lines keyed the same way (the first sport= and dport= are the original tuple's). */
function keysOf(lines: string[]): Set<string> {
  const out = new Set<string>();
  for (const line of lines) {
    const m = /sport=(\d+) dport=(\d+)/.exec(line);
    if (m) out.add(`${m[1]}>${m[2]}`);
  }
  return out;
}

const sorted = (s: Set<string>) => [...s].sort();
const dports = (s: Set<string>) => new Set([...s].map((k) => Number(k.split('>')[1])));

describeKernel('NAT selectors on flows NATed by nft, against conntrack -n, -g and -j', () => {
  let lab: NatLab;
  const FLOWS = 15;
  // Each destination port gets one kind of NAT on the router.
  const KIND: Record<number, string> = {
    5300: 'dnat address (the lab service)',
    5301: 'dnat address and port',
    5302: 'dnat port only',
    5303: 'snat address',
    5304: 'snat port only',
    5305: 'none',
  };

  beforeAll(() => {
    lab = natLab('udp', 5300);
    lab.route(BACKEND_A);
    lab.router.exec(
      'nft',
      ['-f', '-'],
      `table ip extra {
 chain pre { type nat hook prerouting priority -101;
  ip daddr ${VIP} udp dport 5301 dnat to ${BACKEND_A}:6301
  ip daddr ${BACKEND_B} udp dport 5302 dnat to ${BACKEND_B}:6302
 }
 chain post { type nat hook postrouting priority 100;
  ip daddr ${BACKEND_B} udp dport 5303 snat to 10.77.2.1
  ip daddr ${BACKEND_B} udp dport 5304 snat to ${CLIENT_IP}:40000-40999
 }
}
`,
    );
    // The backends drop what they get: no answers, no ICMP errors.
    lab.backends.exec('nft', ['-f', '-'], 'table inet quiet {\n chain in {\n type filter hook input priority 10;\n meta l4proto udp drop\n }\n}\n');
    for (const port of Object.keys(KIND).map(Number)) {
      const dst = port === 5300 || port === 5301 ? VIP : BACKEND_B;
      // hping3 counts the source port up from -s: FLOWS flows per kind, each its own entry.
      spawnSync('ip', ['netns', 'exec', lab.client.name, 'hping3', '-q', '-2', '-p', String(port), '-s', String(port * 10), '-c', String(FLOWS), '-i', 'u2000', dst], { stdio: 'ignore', timeout: 60_000 });
    }
  }, 120_000);
  afterAll(() => lab?.destroy());

  it('the table holds every kind, each flow once', () => {
    const all = keysOf(lab.router.conntrackList(['-p', 'udp']));
    for (const port of Object.keys(KIND).map(Number)) expect([...all].filter((k) => k.endsWith(`>${port}`)).length, KIND[port]).toBe(FLOWS);
  });

  it.each([
    [['--src-nat'], ['-n'], [5303, 5304]],
    [['--dst-nat'], ['-g'], [5300, 5301, 5302]],
    [['--any-nat'], ['-j'], [5300, 5301, 5302, 5303, 5304]],
    [['--src-nat', '--dst-nat'], ['-n', '-g'], []],
    [['--dst-nat', '--dport', '5302'], ['-g', '--dport', '5302'], [5302]],
  ])('ctpurge list %j selects what conntrack -L %j lists', (ours, theirs, expected) => {
    const mine = ctpurgeKeys(lab.router, ['--proto', 'udp', ...ours]);
    const peer = keysOf(lab.router.conntrackList(['-p', 'udp', ...theirs]));
    expect(sorted(mine)).toEqual(sorted(peer));
    expect([...dports(mine)].sort()).toEqual(expected);
    expect(mine.size).toBe(expected.length * FLOWS);
  });

  it('the API: srcNat false is the complement; the status bits say the kernel set NAT up', async () => {
    const ct = await Conntrack.open({ netns: lab.router.path });
    try {
      const not = new Set<number>();
      for await (const e of ct.list({ protocol: 'udp', srcNat: false })) not.add(e.orig.dport as number);
      expect([...not].map(String).sort()).toEqual(['5300', '5301', '5302', '5305']);
      // The lab's nat table sets NAT up (a null binding where nothing changes) on every flow.
      expect(await ct.count({ protocol: 'udp', status: ['SRC_NAT_DONE', 'DST_NAT_DONE'] })).toBe(6 * FLOWS);
      expect(await ct.count({ protocol: 'udp', status: 'DST_NAT' })).toBe(3 * FLOWS);
    } finally {
      await ct.close();
    }
  });

  it('a dry run counts and a purge deletes exactly the source-NATed flows; the rest stay', () => {
    const before = keysOf(lab.router.conntrackList(['-p', 'udp']));
    const snat = keysOf(lab.router.conntrackList(['-p', 'udp', '-n']));
    const dry = ctpurge(['--netns', lab.router.name, '--proto', 'udp', '--src-nat', '--dry-run', '--json']);
    expect(dry.status).toBe(0);
    expect(JSON.parse(dry.stdout) as { matched: number }).toMatchObject({ matched: snat.size });
    const run = ctpurge(['--netns', lab.router.name, '--proto', 'udp', '--src-nat', '--json']);
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout) as { deleted: number }).toMatchObject({ deleted: snat.size });
    const after = keysOf(lab.router.conntrackList(['-p', 'udp']));
    expect(sorted(after)).toEqual(sorted(new Set([...before].filter((k) => !snat.has(k)))));
    expect(keysOf(lab.router.conntrackList(['-p', 'udp', '-n'])).size).toBe(0);
  });
});

describeKernel('status bits and labels, against conntrack -u and -l', () => {
  let ns: TestNetns;
  let etc: string;
  const LABELS = '0 blue\n1 green\n5 red\n# a comment\n9 gold\n';
  const STATUSES = ['', 'SEEN_REPLY', 'SEEN_REPLY,ASSURED', 'ASSURED', 'FIXED_TIMEOUT', 'SEEN_REPLY,FIXED_TIMEOUT'];
  const LABEL_SETS = [[], [0], [1], [0, 5], [1, 5, 9]];

  beforeAll(async () => {
    ns = TestNetns.create('ctp-sel');
    etc = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-etc-'));
    writeFileSync(path.join(etc, 'connlabel.conf'), LABELS);
    const lines: string[] = [];
    for (let i = 0; i < 60; i++) {
      const status = STATUSES[i % STATUSES.length] as string;
      lines.push(`-I -p udp -s 10.5.0.1 -d 10.5.0.2 --sport ${1000 + i} --dport 53 -t 600${status ? ` -u ${status}` : ''}`);
    }
    ns.load(lines);
    // The kernel gives entries room for labels only once a rule in the namespace uses them.
    ns.exec('nft', ['-f', '-'], 'table inet l {\n chain c {\n type filter hook output priority 0;\n ct label 127 counter\n }\n}\n');
    const ct = await Conntrack.open({ netns: ns.path });
    try {
      for (let i = 0; i < 40; i++) {
        const labels = LABEL_SETS[i % LABEL_SETS.length] as number[];
        await ct.create({ protocol: 'tcp', src: '10.6.0.1', dst: '10.6.0.2', sport: 2000 + i, dport: 80, state: 'ESTABLISHED', timeout: 600, labels });
      }
    } finally {
      await ct.close();
    }
  });
  afterAll(() => {
    ns?.destroy();
    if (etc) rmSync(etc, { recursive: true, force: true });
  });

  /** How many entries the table was built with that have every bit of a --status list. */
  const built = (status: string) =>
    STATUSES.filter((s) => {
      const has = new Set(s.split(',').filter(Boolean));
      return status.split(',').every((b) => (b === 'UNREPLIED' ? !has.has('SEEN_REPLY') : has.has(b)));
    }).length * 10;

  it.each(['ASSURED', 'SEEN_REPLY', 'SEEN_REPLY,ASSURED', 'UNREPLIED', 'FIXED_TIMEOUT', 'FIXED_TIMEOUT,SEEN_REPLY'])('--status %s selects what conntrack -L -u lists', (status) => {
    const mine = ctpurgeKeys(ns, ['--proto', 'udp', '--status', status]);
    const peer = keysOf(ns.conntrackList(['-p', 'udp', '-u', status]));
    expect(sorted(mine)).toEqual(sorted(peer));
    expect(mine.size).toBe(built(status));
  });

  it.each(['ASSURED', 'FIXED_TIMEOUT'])('--status %s,UNREPLIED takes those entries without a reply; conntrack 1.4.7 lists none of them', (bit) => {
    // With UNREPLIED in the list, conntrack sends SEEN_REPLY as the only bit of the kernel's
    // mask but the other bits in the value, which no entry can match. ctpurge compares every
    // bit asked for: the entries conntrack -u BIT lists that are [UNREPLIED].
    const mine = ctpurgeKeys(ns, ['--proto', 'udp', '--status', `${bit},UNREPLIED`]);
    expect(mine.size).toBe(built(`${bit},UNREPLIED`));
    expect(mine.size).toBeGreaterThan(0);
    const peerLines = ns.conntrackList(['-p', 'udp', '-u', bit]).filter((l) => /dport=53 \[UNREPLIED\]/.test(l));
    expect(sorted(mine)).toEqual(sorted(keysOf(peerLines)));
    expect(keysOf(ns.conntrackList(['-p', 'udp', '-u', `${bit},UNREPLIED`])).size).toBe(0);
  });

  it('--status with a bit set and clear at once, or an unknown name, is a usage error naming the option', () => {
    for (const args of [['--status', 'SEEN_REPLY,UNREPLIED'], ['--unreplied', '--status', 'SEEN_REPLY'], ['--status', 'ASURED']]) {
      const r = ctpurge(['--netns', ns.name, ...args]);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^ctpurge: (--status|--unreplied|status)[: ]/);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(ctpurge(['--netns', ns.name, '--status', 'ASURED']).stderr).toMatch(/did you mean ASSURED/);
    expect(ns.conntrackCount()).toBe(100);
  });

  /** conntrack -L -l reads /etc/xtables/connlabel.conf: it runs in a mount namespace of its own with the test's file there. */
  function conntrackWithLabels(args: string[]): string[] {
    const script = `set -e
up=$(mktemp -d); work=$(mktemp -d)
mkdir -p "$up/xtables"; cp "${etc}/connlabel.conf" "$up/xtables/"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$up,workdir=$work" /etc
exec ip netns exec "${ns.name}" conntrack -L "$@"`;
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`conntrack -L ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.split('\n').filter(Boolean);
  }

  it.each([['red'], ['blue'], ['green,red'], ['red,gold'], ['gold']])('--label %s selects what conntrack -L -l lists', (names) => {
    const env = { CTPURGE_CONNLABEL_CONF: path.join(etc, 'connlabel.conf') };
    const mine = ctpurgeKeys(ns, ['--proto', 'tcp', '--label', names], env);
    const peer = keysOf(conntrackWithLabels(['-p', 'tcp', '-l', names]));
    expect(sorted(mine)).toEqual(sorted(peer));
    const bits = names.split(',').map((n) => ({ blue: 0, green: 1, red: 5, gold: 9 })[n] as number);
    expect(mine.size).toBe(LABEL_SETS.filter((set) => bits.every((b) => set.includes(b))).length * 8);
    // Bit numbers select the same.
    expect(sorted(ctpurgeKeys(ns, ['--proto', 'tcp', '--label', bits.join(',')]))).toEqual(sorted(mine));
  });

  it('an unknown label name is a usage error naming the file; the table is untouched', () => {
    const env = { CTPURGE_CONNLABEL_CONF: path.join(etc, 'connlabel.conf') };
    const r = ctpurge(['--netns', ns.name, '--label', 'rde'], env);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^ctpurge: --label: unknown label "rde" \(did you mean red\?\) \(not in .*connlabel\.conf/);
    const missing = ctpurge(['--netns', ns.name, '--label', 'red'], { CTPURGE_CONNLABEL_CONF: path.join(etc, 'none.conf') });
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/^ctpurge: --label: label "red" is not a bit number, and .*none\.conf cannot be read \(ENOENT\)/);
    expect(ns.conntrackCount()).toBe(100);
  });
});

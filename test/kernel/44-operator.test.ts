/**
 * What a careless operator does to a CLI: pipes it into head, points its files at odd places,
 * fills the disk, rotates its log, deletes its namespace.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BIN, TEST_LOCK_DIR } from '../helpers/cli.js';
import { describeKernel, TestNetns } from '../helpers/kernel.js';

const ENTRY = (i: number) => `-I -p tcp -s 10.4.${i >> 8}.${i & 255} -d 192.0.2.80 --sport ${20000 + (i % 40000)} --dport 80 --state ESTABLISHED -t 424800`;

/** Runs `ctpurge ARGS | READER` in bash; returns ctpurge's own exit status and stderr. */
function piped(args: string[], reader: string): { status: number; stderr: string } {
  const quoted = [process.execPath, BIN, ...args].map((a) => `'${a}'`).join(' ');
  const r = spawnSync('bash', ['-c', `${quoted} 2>"$ERRF" | ${reader}; echo "\${PIPESTATUS[0]}"; cat "$ERRF"; rm -f "$ERRF"`], {
    encoding: 'utf8',
    env: { ...process.env, CTPURGE_LOCK_DIR: TEST_LOCK_DIR, ERRF: `/tmp/ctpurge-piped-${process.pid}.err` },
    timeout: 60_000,
  });
  const [status, ...rest] = r.stdout.split('\n');
  return { status: Number(status), stderr: rest.join('\n').trim() };
}

describeKernel('a reader that goes away: ctpurge ... | head', () => {
  let ns: TestNetns;
  beforeAll(() => {
    ns = TestNetns.create();
    ns.load(Array.from({ length: 20000 }, (_, i) => ENTRY(i)));
  });
  afterAll(() => ns?.destroy());

  for (const format of [[], ['-o', 'conntrack'], ['--json'], ['--json', '--limit', '15000']]) {
    it(`list ${format.join(' ') || '(table)'} | head -1 exits 0, quietly`, () => {
      const r = piped(['list', ...format, '--netns', ns.name], 'head -1 >/dev/null');
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    });
  }

  it('stats, a dry run with entries, and a usage error keep their exit codes with a closed pipe', () => {
    expect(piped(['stats', '--netns', ns.name], 'true').status).toBe(0);
    expect(piped(['--state', 'ESTABLISHED', '--dry-run', '--json', '--verbose', '--netns', ns.name], 'head -c 10 >/dev/null').status).toBe(0);
    expect(piped(['--bogus'], 'true').status).toBe(2);
    // A slow reader that reads everything gets everything.
    const r = spawnSync('bash', ['-c', `'${process.execPath}' '${BIN}' list --json --netns ${ns.name} | (sleep 1; wc -l)`], {
      encoding: 'utf8',
      env: { ...process.env, CTPURGE_LOCK_DIR: TEST_LOCK_DIR },
    });
    expect(Number(r.stdout.trim())).toBe(20000);
    expect(ns.conntrackCount()).toBe(20000);
  });
});

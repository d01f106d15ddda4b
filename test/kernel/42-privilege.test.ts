import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeKernel, TestNetns } from '../helpers/kernel.js';
import { repliedTcpLine, staleTcpLine } from '../helpers/seed.js';
import { BIN, ROOT } from '../helpers/cli.js';

const stale = (i: number) => staleTcpLine(i, 1);
const replied = (i: number) => repliedTcpLine(i, 2);

describeKernel('least privilege', () => {
  let ns: TestNetns;
  let dir: string;
  beforeAll(() => {
    ns = TestNetns.create('ctp-priv');
    dir = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-priv-'));
    chmodSync(dir, 0o1777);
  });
  afterAll(() => {
    ns?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A command run as nobody, holding CAP_NET_ADMIN as an ambient capability and nothing else. */
  function asNetAdminRun(argv: string[]) {
    return spawnSync(
      'ip',
      ['netns', 'exec', ns.name, 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all,+net_admin', '--ambient-caps=-all,+net_admin', '--bounding-set=-all,+net_admin', ...argv],
      { encoding: 'utf8', env: { ...process.env, CTPURGE_LOCK_DIR: path.join(dir, 'locks') }, timeout: 60_000 },
    );
  }
  const asNetAdmin = (args: string[]) => asNetAdminRun([process.execPath, BIN, ...args]);

  it('a non-root user with only CAP_NET_ADMIN purges, lists and writes a 0600 log', () => {
    ns.load([...Array.from({ length: 300 }, (_, i) => stale(i)), ...Array.from({ length: 100 }, (_, i) => replied(i))]);
    // What ctpurge runs with below: uid 65534 and CAP_NET_ADMIN (bit 12) alone.
    const status = asNetAdminRun(['/bin/cat', '/proc/self/status']).stdout;
    expect(status).toMatch(/^Uid:\s+65534\s/m);
    expect(status).toMatch(/^CapEff:\s+0000000000001000$/m);
    const log = path.join(dir, 'deleted.ndjson');
    const r = asNetAdmin(['--unreplied', '--older', '1h', '--log', log, '--json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ deleted: 300, tableSize: 400 });
    const st = statSync(log);
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.uid).toBe(65534);
    expect(readFileSync(log, 'utf8').trim().split('\n')).toHaveLength(300);
    const list = asNetAdmin(['list', '--json']);
    expect(list.status).toBe(0);
    expect(list.stdout.trim().split('\n')).toHaveLength(100);
    // Without the capability the same command is refused with the hint.
    const none = spawnSync('ip', ['netns', 'exec', ns.name, 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', process.execPath, BIN, 'list'], { encoding: 'utf8' });
    expect(none.status).toBe(1);
    expect(none.stderr).toMatch(/CAP_NET_ADMIN/);
  });

  it('the library spawns no child processes (strace: one execve, no fork)', () => {
    ns.load(Array.from({ length: 2000 }, (_, i) => stale(1000 + i)));
    const script = path.join(dir, 'nochild.mjs');
    writeFileSync(
      script,
      `import { Conntrack } from ${JSON.stringify(path.join(ROOT, 'dist/index.js'))};
       const ct = await Conntrack.open();
       await ct.stats(); await ct.settings(); await ct.summary();
       for await (const e of ct.list({ unreplied: true })) void e;
       for await (const t of ct.listNdjson()) void t;
       await ct.purge({ unreplied: true, olderThan: 3600 });
       await ct.purge({ unreplied: true });
       await ct.close();
       console.log('done');`,
    );
    const trace = path.join(dir, 'trace');
    const r = spawnSync('ip', ['netns', 'exec', ns.name, 'strace', '-f', '-qq', '-e', 'trace=execve,fork,vfork,clone,clone3', '-o', trace, process.execPath, script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stdout.trim()).toBe('done');
    const lines = readFileSync(trace, 'utf8').split('\n').filter(Boolean);
    const execs = lines.filter((l) => /\bexecve\(/.test(l) && !/resumed/.test(l));
    expect(execs).toHaveLength(1);
    expect(execs[0]).toContain(process.execPath);
    // Threads (the libuv pool, per-family dump lanes) are clones with CLONE_THREAD; a child process would not be.
    const forks = lines.filter((l) => /\b(fork|vfork)\(/.test(l) || (/\bclone3?\(/.test(l) && !/CLONE_THREAD/.test(l) && !/resumed/.test(l)));
    expect(forks).toEqual([]);
  });
});

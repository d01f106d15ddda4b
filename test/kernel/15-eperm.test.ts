import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeKernel, TestNetns } from '../helpers/kernel.js';
import { BIN, ROOT } from '../helpers/cli.js';


describeKernel('without CAP_NET_ADMIN', () => {
  let ns: TestNetns;
  let dir: string;
  beforeAll(() => {
    ns = TestNetns.create();
    ns.load(['-I -p tcp -s 10.1.0.1 -d 192.0.2.80 --sport 40000 --dport 80 --state ESTABLISHED -t 424800']);
    dir = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-eperm-'));
    chmodSync(dir, 0o755);
  });
  afterAll(() => {
    ns?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs node as nobody, with no capabilities, inside the test namespace. */
  function asNobody(args: string[]) {
    return spawnSync(
      'ip',
      ['netns', 'exec', ns.name, 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', process.execPath, ...args],
      { encoding: 'utf8', timeout: 30_000 },
    );
  }

  it('the API rejects with ConntrackError EPERM naming CAP_NET_ADMIN', () => {
    const script = path.join(dir, 'eperm.mjs');
    writeFileSync(
      script,
      `import { Conntrack } from ${JSON.stringify(path.join(ROOT, 'dist/index.js'))};
       try { await Conntrack.open(); console.log('opened'); }
       catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, errno: e.errno, syscall: e.syscall, message: e.message })); }`,
    );
    chmodSync(script, 0o644);
    const r = asNobody([script]);
    const out = JSON.parse(r.stdout.trim()) as Record<string, unknown>;
    expect(out).toMatchObject({ name: 'ConntrackError', code: 'EPERM', errno: -1 });
    expect(out.message).toMatch(/CAP_NET_ADMIN/);
  });

  it('the CLI exits 1 with one line naming CAP_NET_ADMIN, and the table is untouched', () => {
    const r = asNobody([BIN, '--unreplied']);
    expect(r.status).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^ctpurge: .*CAP_NET_ADMIN/);
    expect(ns.conntrackCount()).toBe(1);
  });
});

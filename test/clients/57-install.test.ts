/**
 * Installing without a compiler: the prebuilt addon (scripts/prebuild.sh, built in a Debian 11
 * root) is packed into the npm tarball, which is installed with `npm install -g` into fresh
 * Debian 11 and Debian 12 roots that have Node and the runtime libraries but no compiler, make
 * or -dev package. The prebuilt addon is the one loaded, and a dry run and a purge run from
 * inside each root in a throwaway namespace.
 */
import { mkdtempSync, readdirSync, rmSync, copyFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';
import { TestNetns } from '../helpers/kernel.js';
import { staleTcpLine, repliedTcpLine } from '../helpers/seed.js';
import { describeClients, run, runAsync } from './clients.js';

const CACHE = path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'ctpurge-install-test');
const PREBUILT = path.join(ROOT, 'prebuilds/linux-x64/ctpurge.glibc.node');
const CLEAN_ENV = ['env', '-i', 'HOME=/root', 'PATH=/usr/local/bin:/usr/bin:/bin', 'NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt'];

describeClients('install without a compiler: the prebuilt addon on Debian 11 and 12', ['debootstrap', 'chroot', 'objdump'], () => {
  let dir: string;
  let tarball: string;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-install-'));
    // Minutes (a Debian 11 root the first time): not in spawnSync, which would block the test
    // worker past vitest's RPC deadline ("Timeout calling onTaskUpdate").
    const pre = await runAsync('bash', [path.join(ROOT, 'scripts/prebuild.sh')], { timeout: 900_000 });
    expect(pre.status, pre.stderr + pre.stdout).toBe(0);
    const pack = run('npm', ['pack', '--pack-destination', dir, '--ignore-scripts'], { env: { npm_config_loglevel: 'error' } });
    expect(pack.status, pack.stderr).toBe(0);
    tarball = path.join(dir, readdirSync(dir).find((f) => f.endsWith('.tgz')) as string);
  }, 1_200_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the prebuilt addon needs glibc 2.31 at most, links no libstdc++, and only the runtime libraries', () => {
    const symbols = run('objdump', ['-T', PREBUILT]).stdout;
    const versions = [...symbols.matchAll(/GLIBC_2\.(\d+)/g)].map((m) => Number(m[1]));
    expect(Math.max(...versions)).toBeLessThanOrEqual(31);
    const needed = [...run('objdump', ['-p', PREBUILT]).stdout.matchAll(/NEEDED\s+(\S+)/g)].map((m) => m[1] as string);
    expect(needed.filter((n) => !/^(libc|libm|libpthread|libdl|ld-linux-x86-64|libnetfilter_conntrack|libmnl|libnfnetlink)\.so/.test(n))).toEqual([]);
    expect(needed).toContain('libnetfilter_conntrack.so.3');
  });

  for (const [suite, name] of [['bullseye', 'Debian 11'], ['bookworm', 'Debian 12']] as const) {
    it(`${name}: npm install -g compiles nothing and loads the prebuilt addon; a dry run and a purge work from inside the root`, async () => {
      const root = path.join(dir, suite);
      const made = await runAsync('bash', [path.join(ROOT, 'test/clients/make-install-root.sh'), suite, CACHE, root], { timeout: 600_000 });
      expect(made.status, made.stderr).toBe(0);
      // A production host: no compiler, no make, no headers.
      expect(run('chroot', [root, 'sh', '-c', 'command -v g++ || command -v cc || command -v make || ls /usr/include/libnetfilter_conntrack']).status).not.toBe(0);
      copyFileSync(tarball, path.join(root, 'tmp/ctpurge.tgz'));
      const ns = TestNetns.create('ctp-install');
      expect(run('mount', ['-t', 'proc', 'proc', path.join(root, 'proc')]).status).toBe(0);
      try {
        const t0 = Date.now();
        // A clean environment: nothing of this test's npm (npm_config_*) leaks into the root.
        const inst = await runAsync('chroot', [root, ...CLEAN_ENV, 'npm', 'install', '-g', '--foreground-scripts', '/tmp/ctpurge.tgz'], { timeout: 300_000 });
        const seconds = (Date.now() - t0) / 1000;
        expect(inst.status, inst.stderr).toBe(0);
        expect(inst.stdout + inst.stderr).toMatch(/ctpurge: using the prebuilt addon \(linux-x64, glibc\); nothing to compile/);
        expect(seconds).toBeLessThan(60);
        const pkg = path.join(root, 'usr/local/lib/node_modules/ctpurge');
        expect(existsSync(path.join(pkg, 'build'))).toBe(false);
        const which = run('chroot', [root, ...CLEAN_ENV, 'node', '-e', "import('/usr/local/lib/node_modules/ctpurge/dist/index.js').then((m) => console.log(m.nativeAddonPath()))"]);
        expect(which.stdout.trim(), which.stderr).toBe('/usr/local/lib/node_modules/ctpurge/prebuilds/linux-x64/ctpurge.glibc.node');
        // In the namespace, from inside the root: 30 stale of 50.
        ns.load([...Array.from({ length: 30 }, (_, i) => staleTcpLine(i)), ...Array.from({ length: 20 }, (_, i) => repliedTcpLine(i))]);
        const inRoot = (args: string[]) => run('ip', ['netns', 'exec', ns.name, 'chroot', root, ...CLEAN_ENV, 'ctpurge', ...args]);
        const dry = inRoot(['--unreplied', '--older', '1h', '--dry-run', '--json']);
        expect(dry.status, dry.stderr).toBe(0);
        expect(JSON.parse(dry.stdout)).toMatchObject({ matched: 30, deleted: 0, dryRun: true });
        const real = inRoot(['--unreplied', '--older', '1h', '--json']);
        expect(real.status, real.stderr).toBe(0);
        expect(JSON.parse(real.stdout)).toMatchObject({ deleted: 30 });
        expect(ns.conntrackCount()).toBe(20);
        console.log(`${name}: npm install -g of the tarball took ${seconds.toFixed(1)} s with the prebuilt addon`);
      } finally {
        run('umount', [path.join(root, 'proc')]);
        ns.destroy();
        rmSync(root, { recursive: true, force: true });
      }
    }, 900_000);
  }
});

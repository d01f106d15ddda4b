/**
 * A hostile local user without CAP_NET_ADMIN (nobody, via setpriv) against the purge lock: it
 * must neither block nor delay a purge, nor make ctpurge write through a planted symlink.
 */
import { chownSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { BIN, ctpurge } from '../helpers/cli.js';
import { describeKernel, TestNetns } from '../helpers/kernel.js';
import { runAsNobody, sharedDir, startAsNobody } from '../helpers/hostile.js';
import { staleTcpLine } from '../helpers/seed.js';

const STALE = (i: number) => staleTcpLine(i, 3);

/** Python, as nobody: opens the lock file as it can (read-only is enough for flock), locks it, waits. */
const HOLD_LOCK = (file: string, create: boolean) => `
import fcntl, os, time
fd = os.open(${JSON.stringify(file)}, ${create ? 'os.O_RDWR | os.O_CREAT, 0o666' : 'os.O_RDONLY'})
${create ? `os.fchmod(fd, 0o666)` : ''}
fcntl.flock(fd, fcntl.LOCK_EX)
print('ready', flush=True)
time.sleep(600)
`;

describeKernel('the purge lock against an unprivileged local user', () => {
  let ns: TestNetns;
  let dir: string;
  beforeEach(() => {
    ns = TestNetns.create();
    ns.load(Array.from({ length: 200 }, (_, i) => STALE(i)));
  });
  afterEach(() => {
    ns?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const lockFile = () => path.join(dir, `netns-${statSync(ns.path).ino}.lock`);
  /** A purge with 5 s to wait for the lock runs at once and deletes the 200 stale entries. */
  const expectPurgeNotDelayed = () => {
    const t0 = Date.now();
    const r = ctpurge(['--unreplied', '--netns', ns.name, '--lock-wait', '5s', '--json'], { CTPURGE_LOCK_DIR: dir });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ deleted: 200 });
    expect(Date.now() - t0).toBeLessThan(4000);
  };

  it('the lock file is private: nobody cannot open it, so cannot lock it', () => {
    dir = sharedDir('ctpurge-lockdir-', 0o755);
    expect(ctpurge(['--unreplied', '--netns', ns.name], { CTPURGE_LOCK_DIR: dir }).status).toBe(0);
    const st = statSync(lockFile());
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.uid).toBe(process.getuid?.());
    const r = runAsNobody(`
import os
try:
    os.open(${JSON.stringify(lockFile())}, os.O_RDONLY)
    print('opened')
except PermissionError:
    print('denied')`);
    expect(r.stdout.trim()).toBe('denied');
  });

  it('an old 0644 lock file that nobody holds is replaced: the purge runs at once', async () => {
    dir = sharedDir('ctpurge-lockdir-', 0o755);
    writeFileSync(lockFile(), '1\n', { mode: 0o644 });
    const hostile = await startAsNobody(HOLD_LOCK(lockFile(), false));
    try {
      expectPurgeNotDelayed();
      expect(statSync(lockFile()).mode & 0o777).toBe(0o600);
    } finally {
      await hostile.stop();
    }
  });

  it('in a shared sticky directory, a lock file planted and held by nobody neither blocks nor delays the purge', async () => {
    dir = sharedDir('ctpurge-lockdir-', 0o1777);
    const hostile = await startAsNobody(HOLD_LOCK(lockFile(), true));
    try {
      expect(statSync(lockFile()).uid).toBe(65534);
      expectPurgeNotDelayed();
      expect(statSync(lockFile()).uid).toBe(process.getuid?.());
    } finally {
      await hostile.stop();
    }
  });

  it('in a shared sticky directory, a directory planted at the lock path by nobody (with a file in it) neither blocks nor delays the purge', () => {
    dir = sharedDir('ctpurge-lockdir-', 0o1777);
    const r0 = runAsNobody(`import os; os.mkdir(${JSON.stringify(lockFile())}, 0o700); open(${JSON.stringify(path.join(lockFile(), 'x'))}, 'w').close(); print('ok')`);
    expect(r0.stdout.trim()).toBe('ok');
    expectPurgeNotDelayed();
    expect(statSync(lockFile()).isFile()).toBe(true);
    // Twice: what was moved aside is never in the way again.
    ns.load(Array.from({ length: 200 }, (_, i) => STALE(i)));
    expectPurgeNotDelayed();
  });

  /** The CLI as uid 1000 holding only CAP_NET_ADMIN, inside the namespace (no setns needed). */
  const purgeAsUser = () =>
    spawnSync('ip', ['netns', 'exec', ns.name, 'setpriv', '--reuid=1000', '--regid=1000', '--clear-groups', '--inh-caps=-all,+net_admin', '--ambient-caps=-all,+net_admin', '--bounding-set=-all,+net_admin', process.execPath, BIN, '--unreplied', '--lock-wait', '5s', '--json'], {
      encoding: 'utf8',
      env: { ...process.env, CTPURGE_LOCK_DIR: dir },
    });

  it('a purger that is not root refuses a shared sticky lock directory (anyone could plant the lock there), before the table is touched', () => {
    dir = sharedDir('ctpurge-lockdir-', 0o1777);
    const r = purgeAsUser();
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^ctpurge: cannot take the purge lock .*: lock directory .* is shared and sticky \(like \/tmp\): another user could plant the lock file there and block every purge/);
    expect(ns.conntrackCount()).toBe(200);
  });

  it('a purger that is not root, in a directory others can write but not sticky: what nobody plants and holds is moved aside', async () => {
    dir = sharedDir('ctpurge-lockdir-', 0o777);
    const hostile = await startAsNobody(HOLD_LOCK(lockFile(), true));
    try {
      const t0 = Date.now();
      const r = purgeAsUser();
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ deleted: 200 });
      expect(Date.now() - t0).toBeLessThan(4000);
      expect(statSync(lockFile()).uid).toBe(1000);
    } finally {
      await hostile.stop();
    }
  });

  it('a symlink planted at the lock path is not followed: its target is untouched', () => {
    dir = sharedDir('ctpurge-lockdir-', 0o1777);
    const target = path.join(dir, 'precious');
    writeFileSync(target, 'keep me\n', { mode: 0o644 });
    const r0 = runAsNobody(`import os; os.symlink(${JSON.stringify(target)}, ${JSON.stringify(lockFile())}); print('ok')`);
    expect(r0.stdout.trim()).toBe('ok');
    const r = ctpurge(['--unreplied', '--netns', ns.name, '--json'], { CTPURGE_LOCK_DIR: dir });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(readFileSync(target, 'utf8')).toBe('keep me\n');
    expect(statSync(lockFile()).isFile()).toBe(true);
  });

  it('a lock directory owned by another user is refused, naming it', () => {
    dir = sharedDir('ctpurge-lockdir-', 0o755);
    const theirs = path.join(dir, 'theirs');
    mkdirSync(theirs, { mode: 0o755 });
    chownSync(theirs, 65534, 65534);
    const r = ctpurge(['--unreplied', '--netns', ns.name], { CTPURGE_LOCK_DIR: theirs });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`lock directory ${theirs} belongs to uid 65534`);
    expect(ns.conntrackCount()).toBe(200);
  });
});

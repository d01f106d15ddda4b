/**
 * A namespace's identity: the purge lock follows the namespace a handle holds, not what its
 * path names now; a namespace found through a process is opened only while that same process
 * (its start time) still holds it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { acquirePurgeLock, Conntrack, ConntrackError } from '../../src/index.js';
import { processStartTime } from '../../src/namespaces.js';
import { describeKernel, TestNetns } from '../helpers/kernel.js';
import { staleTcpLine } from '../helpers/seed.js';
import { waitFor } from '../helpers/wait.js';

describeKernel('namespace identity', () => {
  let ns: TestNetns;
  let holder: ChildProcess;
  let dir: string;
  beforeAll(async () => {
    ns = TestNetns.create('ctp-ident');
    ns.load(Array.from({ length: 10 }, (_, i) => staleTcpLine(i)));
    dir = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-ident-'));
    // A process inside the namespace, as a container's would be (ip netns exec execs sleep).
    holder = spawn('ip', ['netns', 'exec', ns.name, 'sleep', '300'], { stdio: 'ignore' });
    await waitFor('the holder to enter the namespace', () => statSync(`/proc/${holder.pid}/ns/net`).ino === statSync(ns.path).ino, 5000);
  });
  afterAll(() => {
    holder?.kill('SIGKILL');
    ns?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a /proc path is opened only while the process found holds it: another start time is "gone", nothing opened', async () => {
    const nsPath = `/proc/${holder.pid}/ns/net`;
    const inode = statSync(nsPath).ino;
    const startTime = await processStartTime(nsPath);
    expect(startTime).toBeGreaterThan(0);
    const ct = await Conntrack.open({ netns: { name: 'ctr test', path: nsPath, inode, startTime: startTime as number } });
    expect(ct.netnsInode).toBe(inode);
    expect(await ct.count()).toBe(10);
    await ct.close();
    // What open sees when the pid was reused by a process whose namespace got the freed inode.
    const err = await Conntrack.open({ netns: { name: 'ctr test', path: nsPath, inode, startTime: (startTime as number) + 1 } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConntrackError);
    expect(err).toMatchObject({ code: 'ENOENT', operation: 'open', message: expect.stringMatching(/ctr test is gone: .* now names another namespace/) });
  });

  it("the purge lock is the namespace's the handle holds, also once its path is gone", async () => {
    const locks = path.join(dir, 'locks');
    const doomed = TestNetns.create('ctp-ident-gone');
    let ct: Conntrack | undefined;
    try {
      ct = await Conntrack.open({ netns: doomed.name });
      const inode = statSync(doomed.path).ino;
      expect(ct.netnsInode).toBe(inode);
      const byHandle = await acquirePurgeLock(ct, 0, { dir: locks });
      expect(byHandle.file).toBe(path.join(locks, `netns-${inode}.lock`));
      // The same lock by its path: taken.
      await expect(acquirePurgeLock(doomed.path, 0, { dir: locks })).rejects.toMatchObject({ code: 'ELOCKED' });
      byHandle.release();
      doomed.destroy();
      // The path is gone; the handle still holds the namespace and its lock is still its own.
      const again = await acquirePurgeLock(ct, 0, { dir: locks });
      expect(again.file).toBe(path.join(locks, `netns-${inode}.lock`));
      again.release();
      const err = await acquirePurgeLock(doomed.path, 0, { dir: locks }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConntrackError);
      expect(err).toMatchObject({ code: 'ENOENT', operation: 'lock', hint: expect.stringMatching(/gone/) });
    } finally {
      await ct?.close();
      doomed.destroy();
    }
  });
});

/** An unprivileged local user (nobody, no groups, no capabilities) for hostile-user tests. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups'];

/** Runs Python as nobody and waits for it; the system Python, not a shim under /root. */
export function runAsNobody(code: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('setpriv', [...NOBODY, '/usr/bin/python3', '-c', code], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Starts Python as nobody; resolves once it printed `ready` (it then keeps running until killed). */
export async function startAsNobody(code: string): Promise<{ child: ChildProcess; stop: () => Promise<void> }> {
  const child = spawn('setpriv', [...NOBODY, '/usr/bin/python3', '-u', '-c', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (b: Buffer) => b.toString().includes('ready') && resolve());
    child.on('exit', (c) => reject(new Error(`the hostile process exited (${c}) before it was ready: ${err}`)));
  });
  return {
    child,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.on('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** A fresh directory under the temp dir with the given mode (e.g. 0o1777 for a shared one). */
export function sharedDir(prefix: string, mode: number): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  chmodSync(dir, mode);
  return dir;
}

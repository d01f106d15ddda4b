/**
 * After the whole run: the purge-lock directories (test/helpers/cli.ts) of test processes that
 * have ended (each test file's worker makes one). The directories of processes still alive
 * (another run going on beside this one) stay.
 */
import { readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

export default function setup(): () => void {
  return () => {
    for (const name of readdirSync(os.tmpdir())) {
      const pid = Number(/^ctpurge-test-locks-(\d+)$/.exec(name)?.[1]);
      if (pid > 0 && !alive(pid)) rmSync(path.join(os.tmpdir(), name), { recursive: true, force: true });
    }
  };
}

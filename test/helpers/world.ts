/**
 * A private world for tests of "every namespace": new PID, mount and network namespaces
 * (`unshare --pid --fork --mount-proc --mount --net`) with a private tmpfs on /run, so /run/netns
 * and /run/docker/netns are the world's own and /proc shows only the world's processes. The
 * world's "host" namespace is its init's new, empty one: nothing inside can name, open or
 * reach the real host's table. Commands run inside with nsenter; the world dies with its init
 * (killed in stop(), and by --kill-child if the test process dies first).
 */
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

export class PrivateWorld {
  private constructor(
    private readonly unshare: ChildProcess,
    /** The world's init, as the host numbers it. */
    readonly initPid: number,
  ) {}

  static async start(): Promise<PrivateWorld> {
    const unshare = spawn(
      'unshare',
      ['--pid', '--fork', '--kill-child', '--mount-proc', '--mount', '--net', '--propagation', 'private', '--', 'sh', '-c', 'mount -t tmpfs -o size=64m ctpurge-world /run && mkdir -p /run/netns /run/docker/netns && touch /run/.world-ready && exec sleep infinity'],
      { stdio: 'ignore' },
    );
    const deadline = Date.now() + 10_000;
    for (;;) {
      const pid = unshare.pid === undefined ? '' : readFileSync(`/proc/${unshare.pid}/task/${unshare.pid}/children`, 'utf8').trim().split(' ')[0];
      if (pid && existsSync(`/proc/${pid}/root/run/.world-ready`)) return new PrivateWorld(unshare, Number(pid));
      if (Date.now() > deadline) {
        unshare.kill('SIGKILL');
        throw new Error('the private world did not start');
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** The argv that runs a command inside the world. */
  argv(cmd: string[]): string[] {
    return ['nsenter', `--target=${this.initPid}`, '--pid', '--mount', '--net', '--', ...cmd];
  }

  run(cmd: string[], options: { env?: NodeJS.ProcessEnv; input?: string; timeout?: number } = {}): SpawnSyncReturns<string> {
    const [bin, ...args] = this.argv(cmd) as [string, ...string[]];
    return spawnSync(bin, args, { encoding: 'utf8', env: { ...process.env, ...options.env }, input: options.input, timeout: options.timeout ?? 120_000, maxBuffer: 1 << 28 });
  }

  /** A shell script inside the world; throws with its stderr when it fails. */
  sh(script: string, env: NodeJS.ProcessEnv = {}): string {
    const r = this.run(['sh', '-ec', script], { env });
    if (r.status !== 0) throw new Error(`in the private world: ${script.slice(0, 200)}: ${r.stderr}`);
    return r.stdout;
  }

  spawn(cmd: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
    const [bin, ...args] = this.argv(cmd) as [string, ...string[]];
    return spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** A path inside the world's private mounts (/run), as the host reaches it. */
  hostPath(p: string): string {
    return `/proc/${this.initPid}/root${p}`;
  }

  stop(): void {
    this.unshare.kill('SIGKILL');
    try {
      process.kill(this.initPid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/**
 * Cgroups that make a process look like a container's (Docker's cgroupfs layout
 * /docker/ID, Kubernetes' /kubepods/QOS/podUID/ID), under a directory of this test's own in a
 * writable hierarchy of the host; removed again in cleanup().
 */
export class FakeContainerCgroups {
  readonly base: string;
  private readonly dirs: string[] = [];

  constructor() {
    const v1 = '/sys/fs/cgroup/pids';
    const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' '));
    const v2 = mounts.find((m) => m[2] === 'cgroup2')?.[1];
    const root = existsSync(path.join(v1, 'cgroup.procs')) ? v1 : v2;
    if (!root) throw new Error('no writable cgroup hierarchy for the container test');
    this.base = path.join(root, `ctpurge-test-${process.pid}-${randomBytes(3).toString('hex')}`);
  }

  /** Moves pid (a host pid) into a cgroup named like a container's; returns the container id. */
  adopt(hostPid: number, kind: 'docker' | 'pod', podUid?: string): string {
    const id = randomBytes(32).toString('hex');
    const dir = kind === 'docker' ? path.join(this.base, 'docker', id) : path.join(this.base, 'kubepods', 'besteffort', `pod${podUid}`, id);
    mkdirSync(dir, { recursive: true });
    this.dirs.push(dir);
    writeFileSync(path.join(dir, 'cgroup.procs'), String(hostPid));
    return id;
  }

  /** Removes every directory made (the processes in them must be gone). */
  cleanup(): void {
    const all = new Set<string>();
    for (const d of this.dirs) for (let p = d; p.startsWith(this.base); p = path.dirname(p)) all.add(p);
    for (const d of [...all].sort((a, b) => b.length - a.length)) {
      for (let i = 0; i < 50; i++) {
        try {
          rmdirSync(d);
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') break;
          // A process that was killed may take a moment to leave its cgroup.
          spawnSync('sleep', ['0.1']);
        }
      }
    }
  }
}

/** A process of the world, as the host numbers it. */
export function hostPidOf(world: PrivateWorld, worldPid: number): number {
  const worldNs = readlinkSync(`/proc/${world.initPid}/ns/pid`);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/ns/pid`) !== worldNs) continue;
      const pids = /^NSpid:\s+(.+)$/m.exec(readFileSync(`/proc/${entry}/status`, 'utf8'))?.[1]?.trim().split(/\s+/).map(Number);
      if (pids?.at(-1) === worldPid) return Number(entry);
    } catch {
      // a process that exited meanwhile
    }
  }
  throw new Error(`no process ${worldPid} in the private world`);
}

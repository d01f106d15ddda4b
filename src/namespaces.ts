/**
 * Every network namespace of a host, named the way an operator knows it. Sources: the
 * namespace files of `ip netns` and CNI (/run/netns), Docker's (/run/docker/netns) and every
 * process's /proc/PID/ns/net, deduplicated by device and inode. A namespace held only by a
 * process (a container, a pod's pause process) is named from the process's cgroup: the
 * container id, and its name where the host keeps one (Docker's config.v2.json, the pod's
 * hosts file that the kubelet writes). Only host-side files are read, never one inside a
 * container (its /etc/hostname may be a link to any file of the host).
 */
import { open, readdir, stat } from 'node:fs/promises';
import { constants } from 'node:fs';
import path from 'node:path';

export interface ContainerInfo {
  /** The runtime the cgroup names: docker, containerd (Kubernetes), cri-o or podman. */
  runtime: 'docker' | 'containerd' | 'cri-o' | 'podman';
  /** The container's full id (64 hex digits). */
  id: string;
  /** Docker's container name, or the Kubernetes pod's, where the host keeps it. */
  name?: string;
  /** The Kubernetes pod's uid, when the cgroup names one. */
  podUid?: string;
}

export interface NamespaceInfo {
  /**
   * How an operator knows it: 'host' (the init process's namespace), the `ip netns` name,
   * 'ctr NAME' for a container (its name, else the first 12 digits of its id), or 'pid N' for
   * one held only by a process. Unique within one discovery.
   */
  name: string;
  /** A file that opens it: /run/netns/NAME, /run/docker/netns/ID or /proc/PID/ns/net. */
  path: string;
  /** The namespace's inode: its identity while it lives (a path may come to name another). */
  inode: number;
  /** The lowest pid of a process inside it, when there is one. */
  pid?: number;
  /**
   * When `path` is a process's /proc/PID/ns/net: the process's start time (clock ticks after
   * boot, /proc/PID/stat). open() reads it again once the namespace is open: a pid reused
   * meanwhile (and a namespace inode reused with it) is never opened in its stead.
   */
  startTime?: number;
  container?: ContainerInfo;
}

export interface NamespaceSources {
  /** The proc file system. Default /proc. */
  proc?: string;
  /** Directories of namespace files, named ones first. Default /run/netns, /run/docker/netns. */
  namespaceDirs?: string[];
  /** Docker's data root (container names). Default $CTPURGE_DOCKER_ROOT or /var/lib/docker. */
  dockerRoot?: string;
  /** The kubelet's root (pod names). Default $CTPURGE_KUBELET_ROOT or /var/lib/kubelet. */
  kubeletRoot?: string;
}

/** /run/netns is where ip(8) and CNI plugins mount named namespaces; /var/run is a link to /run. */
export const NAMESPACE_DIRS = ['/run/netns', '/run/docker/netns'];

interface Found {
  inode: number;
  dev: number;
  files: string[];
  pids: number[];
}

/** A namespace file that was there and could not be read (EACCES without CAP_SYS_PTRACE). */
export interface Unreadable {
  path: string;
  code: string;
}

/**
 * Every namespace, the host's first, then by name. A namespace that vanishes while it is read is
 * left out; one whose file exists but cannot be read is left out and added to `unreadable`.
 */
export async function findNamespaces(sources: NamespaceSources = {}, unreadable: Unreadable[] = []): Promise<NamespaceInfo[]> {
  const proc = sources.proc ?? '/proc';
  const dirs = sources.namespaceDirs ?? NAMESPACE_DIRS;
  // Every namespace inode lives on the one nsfs device: a file on another device in a
  // namespace directory is a mount point left behind (ip netns add that failed half-way).
  const self = await stat(path.join(proc, 'self/ns/net'));
  // The host's is the init process's (where /proc hides it, this process's own).
  const initVisible = await stat(path.join(proc, '1/ns/net')).catch(() => null);
  const host = initVisible ?? self;
  const hostPath = path.join(proc, initVisible ? '1' : 'self', 'ns/net');
  const found = new Map<string, Found>();
  // Gone (the process exited, the file was removed) is no news; anything else is reported.
  const statOf = (file: string) =>
    stat(file).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT' && err.code !== 'ESRCH') unreadable.push({ path: file, code: err.code ?? 'EIO' });
      return null;
    });
  const note = (dev: number, inode: number): Found => {
    const key = `${dev}:${inode}`;
    let f = found.get(key);
    if (!f) found.set(key, (f = { inode, dev, files: [], pids: [] }));
    return f;
  };
  for (const dir of dirs) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names.sort()) {
      const file = path.join(dir, name);
      const st = await statOf(file);
      if (st && st.dev === self.dev) note(st.dev, st.ino).files.push(file);
    }
  }
  const pids = (await readdir(proc).catch(() => [] as string[])).filter((p) => /^\d+$/.test(p)).map(Number).sort((a, b) => a - b);
  await forEachLimit(pids, 64, async (pid) => {
    // A process that exits meanwhile is simply not there.
    const st = await statOf(path.join(proc, String(pid), 'ns/net'));
    if (st && st.dev === self.dev) note(st.dev, st.ino).pids.push(pid);
  });
  const out: NamespaceInfo[] = [];
  for (const f of found.values()) {
    f.pids.sort((a, b) => a - b);
    const pid = f.pids[0];
    const isHost = f.dev === host.dev && f.inode === host.ino;
    const named = f.files.find((file) => dirs[0] !== undefined && path.dirname(file) === dirs[0]);
    const container = isHost || named ? undefined : await containerOf(f.pids, proc, sources);
    const nsPath = f.files[0] ?? (isHost ? hostPath : path.join(proc, String(pid), 'ns/net'));
    const startTime = f.files[0] === undefined ? await processStartTime(nsPath) : undefined;
    // A process that exited since it was seen: its namespace went with it (or lives on a path).
    if (f.files[0] === undefined && startTime === null) continue;
    const info: NamespaceInfo = {
      name: isHost ? 'host' : named ? path.basename(named) : container ? `ctr ${container.name ?? container.id.slice(0, 12)}` : pid !== undefined ? `pid ${pid}` : `netns ${path.basename(f.files[0] as string)}`,
      path: nsPath,
      inode: f.inode,
      ...(pid === undefined ? {} : { pid }),
      ...(typeof startTime === 'number' ? { startTime } : {}),
      ...(container ? { container } : {}),
    };
    out.push(info);
  }
  // Names must tell namespaces apart (metrics, audit lines): a repeated one gets its inode.
  const seen = new Map<string, number>();
  for (const i of out) seen.set(i.name, (seen.get(i.name) ?? 0) + 1);
  for (const i of out) if ((seen.get(i.name) ?? 0) > 1) i.name = `${i.name} #${i.inode}`;
  return out.sort((a, b) => (a.name === 'host' ? -1 : b.name === 'host' ? 1 : a.name.localeCompare(b.name)));
}

/**
 * The start time of the process whose /proc/PID/ns/net (or /proc/self/...) nsPath is: field 22
 * of /proc/PID/stat, after the command name (which may hold spaces and parentheses); null when
 * the process is gone.
 */
export async function processStartTime(nsPath: string): Promise<number | null> {
  // One line of 52 fields, well under 4 KiB (the command name is at most 64 bytes).
  const text = await readSmall(path.join(path.dirname(path.dirname(nsPath)), 'stat'), 4096);
  if (text === null) return null;
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const start = Number(fields[19]);
  return Number.isSafeInteger(start) ? start : null;
}

const CGROUP_PATTERNS: { re: RegExp; runtime: ContainerInfo['runtime'] }[] = [
  // systemd cgroup driver: docker-ID.scope, cri-containerd-ID.scope, crio-ID.scope, libpod-ID.scope
  { re: /\/docker-([0-9a-f]{64})\.scope/, runtime: 'docker' },
  { re: /\/cri-containerd-([0-9a-f]{64})\.scope/, runtime: 'containerd' },
  { re: /\/crio-([0-9a-f]{64})\.scope/, runtime: 'cri-o' },
  { re: /\/libpod-([0-9a-f]{64})\.scope/, runtime: 'podman' },
  // cgroupfs driver: /docker/ID, /kubepods/QOS/podUID/ID
  { re: /\/docker\/([0-9a-f]{64})$/, runtime: 'docker' },
  { re: /\/kubepods\/(?:[^/]+\/)*pod[0-9a-f_-]{36}\/([0-9a-f]{64})$/, runtime: 'containerd' },
];

/**
 * The container a /proc/PID/cgroup names (cgroup v1 lines or the v2 line), by the paths
 * Docker, containerd (Kubernetes), CRI-O and Podman give their containers; null for none.
 */
export function containerOfCgroup(text: string): Omit<ContainerInfo, 'name'> | null {
  for (const line of text.split('\n')) {
    const cgroup = line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1);
    for (const { re, runtime } of CGROUP_PATTERNS) {
      const m = re.exec(cgroup);
      if (!m) continue;
      // systemd's slices spell the pod uid with '_' (kubepods-besteffort-pod0f1e_2d3c...slice).
      const podUid = /pod([0-9a-f]{8}[_-][0-9a-f]{4}[_-][0-9a-f]{4}[_-][0-9a-f]{4}[_-][0-9a-f]{12})/.exec(cgroup)?.[1]?.replaceAll('_', '-');
      return { runtime, id: m[1] as string, ...(podUid ? { podUid } : {}) };
    }
  }
  return null;
}

/** The container of the first process (of the namespace's) whose cgroup names one. */
async function containerOf(pids: number[], proc: string, sources: NamespaceSources): Promise<ContainerInfo | undefined> {
  for (const pid of pids.slice(0, 8)) {
    const text = await readSmall(path.join(proc, String(pid), 'cgroup'), 64 * 1024);
    const c = text === null ? null : containerOfCgroup(text);
    if (!c) continue;
    const name = c.podUid ? await podName(c.podUid, sources) : c.runtime === 'docker' ? await dockerName(c.id, sources) : undefined;
    return { ...c, ...(name ? { name } : {}) };
  }
  return undefined;
}

/** Docker's name for a container ("/web" in config.v2.json), without the slash. */
async function dockerName(id: string, sources: NamespaceSources): Promise<string | undefined> {
  const root = sources.dockerRoot ?? process.env.CTPURGE_DOCKER_ROOT ?? '/var/lib/docker';
  const text = await readSmall(path.join(root, 'containers', id, 'config.v2.json'), 1 << 20);
  if (text === null) return undefined;
  try {
    const name = (JSON.parse(text) as { Name?: unknown }).Name;
    return typeof name === 'string' && name.length > 1 ? printable(name.replace(/^\//, '')) : undefined;
  } catch {
    return undefined;
  }
}

/** A pod's name: the hostname the kubelet wrote last in the pod's hosts file (its own file, on the host). */
async function podName(uid: string, sources: NamespaceSources): Promise<string | undefined> {
  const root = sources.kubeletRoot ?? process.env.CTPURGE_KUBELET_ROOT ?? '/var/lib/kubelet';
  const text = await readSmall(path.join(root, 'pods', uid, 'etc-hosts'), 64 * 1024);
  const last = text
    ?.split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .at(-1);
  const host = last?.split(/\s+/)[1];
  return host ? printable(host) : undefined;
}

/** What a name may hold when it is printed: no control characters, at most 64 characters. */
function printable(s: string): string | undefined {
  const clean = s.replace(/[\u0000-\u001f\u007f]/g, '').slice(0, 64);
  return clean.length > 0 ? clean : undefined;
}

/** A regular file's text, at most max bytes; null when it is not one (a FIFO never blocks: O_NONBLOCK). */
async function readSmall(file: string, max: number): Promise<string | null> {
  let fh;
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    const st = await fh.stat();
    // /proc files report size 0: read them up to max.
    if (!st.isFile()) return null;
    const buf = Buffer.alloc(max);
    const { bytesRead } = await fh.read(buf, 0, max, 0);
    return buf.subarray(0, bytesRead).toString('utf8');
  } catch {
    return null;
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/** Runs fn over items, at most limit at a time. */
export async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

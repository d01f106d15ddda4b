/**
 * A service behind a DNAT rule, with real traffic: client -> router (nft DNAT of a service
 * address to backend A or B) -> backends. Three throwaway namespaces joined by veth pairs.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { TestNetns } from './kernel.js';

export const VIP = '10.77.9.9';
export const BACKEND_A = '10.77.2.10';
export const BACKEND_B = '10.77.2.20';
export const CLIENT_IP = '10.77.1.2';

export interface NatLab {
  client: TestNetns;
  router: TestNetns;
  backends: TestNetns;
  /** Points the service (protocol, port) at one backend: the rule is replaced, entries are not touched. */
  route(backend: string): void;
  /** Removes a backend's address (the backend is gone). */
  removeBackend(backend: string): void;
  /** Packets the backends' input hook saw for the service port, per backend address. */
  received(backend: string): number;
  destroy(): void;
}

function veth(a: TestNetns, aName: string, b: TestNetns, bName: string): void {
  a.exec('ip', ['link', 'add', aName, 'type', 'veth', 'peer', 'name', bName]);
  a.exec('ip', ['link', 'set', bName, 'netns', b.name]);
  a.exec('ip', ['link', 'set', aName, 'up']);
  b.exec('ip', ['link', 'set', bName, 'up']);
}

export function natLab(proto: 'udp' | 'tcp', port: number): NatLab {
  const client = TestNetns.create('ctp-natc');
  const router = TestNetns.create('ctp-natr');
  const backends = TestNetns.create('ctp-natb');
  const tag = client.name.slice(-6);
  try {
    veth(client, `c${tag}`, router, `rc${tag}`);
    veth(router, `rb${tag}`, backends, `b${tag}`);
    client.exec('ip', ['addr', 'add', `${CLIENT_IP}/24`, 'dev', `c${tag}`]);
    client.exec('ip', ['route', 'add', 'default', 'via', '10.77.1.1']);
    router.exec('ip', ['addr', 'add', '10.77.1.1/24', 'dev', `rc${tag}`]);
    router.exec('ip', ['addr', 'add', '10.77.2.1/24', 'dev', `rb${tag}`]);
    router.sysctl('net.ipv4.ip_forward', 1);
    // A goes away in the tests: B must not go with it (deleting a primary address deletes
    // its secondaries unless they are promoted).
    backends.sysctl(`net.ipv4.conf.b${tag}.promote_secondaries`, 1);
    backends.exec('ip', ['addr', 'add', `${BACKEND_A}/24`, 'dev', `b${tag}`]);
    backends.exec('ip', ['addr', 'add', `${BACKEND_B}/24`, 'dev', `b${tag}`]);
    backends.exec('ip', ['route', 'add', 'default', 'via', '10.77.2.1']);
    // UDP to the service is counted and dropped on the backends (no listener, no ICMP
    // errors); TCP is counted and reaches the echo servers.
    const verdict = proto === 'udp' ? ' drop' : '';
    backends.exec(
      'nft',
      ['-f', '-'],
      `table inet b {\n chain in {\n type filter hook input priority 0;\n ip daddr ${BACKEND_A} ${proto} dport ${port} counter${verdict}\n ip daddr ${BACKEND_B} ${proto} dport ${port} counter${verdict}\n }\n}\n`,
    );
  } catch (err) {
    for (const ns of [client, router, backends]) ns.destroy();
    throw err;
  }
  const lab: NatLab = {
    client,
    router,
    backends,
    route(backend) {
      router.exec(
        'nft',
        ['-f', '-'],
        `table ip svc\ndelete table ip svc\ntable ip svc {\n chain pre {\n type nat hook prerouting priority -100;\n ip daddr ${VIP} ${proto} dport ${port} dnat to ${backend}\n }\n}\n`,
      );
    },
    removeBackend(backend) {
      backends.exec('ip', ['addr', 'del', `${backend}/24`, 'dev', `b${tag}`]);
    },
    received(backend) {
      const out = backends.exec('nft', ['list', 'chain', 'inet', 'b', 'in']);
      const line = out.split('\n').find((l) => l.includes(`ip daddr ${backend} `));
      const m = line ? /counter packets (\d+)/.exec(line) : null;
      if (!m) throw new Error(`no counter for ${backend} in:\n${out}`);
      return Number(m[1]);
    },
    destroy() {
      for (const ns of [client, router, backends]) ns.destroy();
    },
  };
  return lab;
}

/** A process in a namespace, killed by the returned function. */
export function spawnIn(ns: TestNetns, cmd: string, args: string[]): ChildProcessWithoutNullStreams {
  return spawn('ip', ['netns', 'exec', ns.name, cmd, ...args], { stdio: 'pipe' });
}


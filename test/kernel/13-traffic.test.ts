import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Conntrack, type Entry } from '../../src/index.js';
import { describeKernel, TestNetns } from '../helpers/kernel.js';

export const CT_RULE = 'table inet t {\n chain o {\n type filter hook output priority 0;\n ct state new counter\n }\n}\n';

/** A client namespace with a veth to a peer that never answers, and conntrack active. */
export function trafficPair(): { client: TestNetns; peer: TestNetns; peerIp: string } {
  const client = TestNetns.create('ctp-cli');
  const peer = TestNetns.create('ctp-peer');
  const a = `v${client.name.slice(-6)}`;
  const b = `p${peer.name.slice(-6)}`;
  client.exec('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
  client.exec('ip', ['link', 'set', b, 'netns', peer.name]);
  client.exec('ip', ['addr', 'add', '10.99.0.1/24', 'dev', a]);
  client.exec('ip', ['link', 'set', a, 'up']);
  peer.exec('ip', ['link', 'set', b, 'up']);
  // No address on the peer side and a static neighbour: packets leave, nothing answers.
  client.exec('ip', ['neigh', 'add', '10.99.0.2', 'lladdr', '02:00:00:00:00:02', 'dev', a, 'nud', 'permanent']);
  client.exec('nft', ['-f', '-'], CT_RULE);
  return { client, peer, peerIp: '10.99.0.2' };
}

export function hpingAcks(ns: TestNetns, ip: string, count: number, sport = 20000, dport = 80): void {
  spawnSync('ip', ['netns', 'exec', ns.name, 'hping3', '-q', '-A', '-p', String(dport), '-s', String(sport), '-c', String(count), '-i', 'u100', ip], { stdio: 'ignore', timeout: 60_000 });
}

describeKernel('real traffic: mid-stream ACK pickups over a veth pair', () => {
  let pair: ReturnType<typeof trafficPair>;
  let ct: Conntrack;
  beforeAll(async () => {
    pair = trafficPair();
    hpingAcks(pair.client, pair.peerIp, 500);
    ct = await Conntrack.open({ netns: pair.client.name });
  });
  afterAll(async () => {
    await ct?.close();
    pair?.client.destroy();
    pair?.peer.destroy();
  });

  it('hping3 ACKs create genuine ESTABLISHED [UNREPLIED] entries', async () => {
    const got: Entry[] = [];
    for await (const e of ct.list({ unreplied: true, protocol: 'tcp', dport: 80 })) got.push(e);
    expect(got.length).toBeGreaterThanOrEqual(450);
    expect(got.length).toBe(pair.client.conntrackList(['-p', 'tcp', '-u', 'UNREPLIED']).length);
    for (const e of got) {
      expect(e.state).toBe('ESTABLISHED');
      expect(e.unreplied).toBe(true);
      expect(e.orig.dst).toBe(pair.peerIp);
    }
  });

  it('a pickup seconds old never looks days old: the unacknowledged cap is applied', async () => {
    for await (const e of ct.list({ protocol: 'tcp', dport: 80 })) {
      expect(e.timeout).toBeLessThanOrEqual(300);
      expect(e.ageSource).toBe('timeout');
      expect(e.age).toBeLessThan(120);
    }
    expect(await ct.count({ unreplied: true, olderThan: 3600 })).toBe(0);
    expect(await ct.count({ unreplied: true, olderThan: 0 })).toBeGreaterThanOrEqual(450);
  });
});

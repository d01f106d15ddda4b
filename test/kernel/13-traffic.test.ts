import { afterAll, beforeAll, expect, it } from 'vitest';
import { Conntrack, type Entry } from '../../src/index.js';
import { describeKernel } from '../helpers/kernel.js';
import { hpingAcks, trafficPair } from '../helpers/traffic.js';

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

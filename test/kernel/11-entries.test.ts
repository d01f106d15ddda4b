import { afterAll, beforeAll, expect, it } from 'vitest';
import { Conntrack } from '../../src/index.js';
import { describeKernel, TestNetns } from '../helpers/kernel.js';

describeKernel('create, get and delete', () => {
  let ns: TestNetns;
  let ct: Conntrack;
  beforeAll(async () => {
    ns = TestNetns.create();
    // The kernel only gives entries room for labels once something in the namespace uses them.
    ns.exec('nft', ['-f', '-'], 'table inet t {\n chain o {\n type filter hook output priority 0;\n ct label 1\n }\n}\n');
    ct = await Conntrack.open({ netns: ns.name });
  });
  afterAll(async () => {
    await ct?.close();
    ns?.destroy();
  });

  it('round-trips TCP over IPv4 with state, status, mark, zone and labels', async () => {
    await ct.create({ protocol: 'tcp', src: '10.1.0.1', dst: '192.0.2.80', sport: 40000, dport: 80, state: 'ESTABLISHED', timeout: 424800, status: ['seenReply', 'assured'], mark: 7, zone: 3, labels: [1, 100] });
    const e = await ct.get({ protocol: 'tcp', src: '10.1.0.1', dst: '192.0.2.80', sport: 40000, dport: 80, zone: 3 });
    expect(e).not.toBeNull();
    expect(e).toMatchObject({ family: 'ipv4', protocol: 'tcp', state: 'ESTABLISHED', mark: 7, zone: 3, unreplied: false, labels: [1, 100] });
    expect(e!.status.assured).toBe(true);
    expect(e!.reply).toMatchObject({ src: '192.0.2.80', dst: '10.1.0.1', sport: 80, dport: 40000 });
    expect(e!.timeout).toBeGreaterThan(424790);
    expect(e!.ageSource).toBe('timeout');
    // The independent view agrees.
    expect(ns.conntrackList(['-w', '3']).join('\n')).toMatch(/src=10\.1\.0\.1 dst=192\.0\.2\.80 sport=40000 dport=80 .*\[ASSURED\] mark=7 .*zone=3/);
    // Zone matters: the same tuple in zone 0 does not exist.
    expect(await ct.get({ protocol: 'tcp', src: '10.1.0.1', dst: '192.0.2.80', sport: 40000, dport: 80 })).toBeNull();
  });

  it('round-trips IPv6, UDP, ICMP, ICMPv6, SCTP, GRE and a plain protocol number', async () => {
    await ct.create({ protocol: 'udp', src: 'fd00::1', dst: 'fd00::2', sport: 5000, dport: 53, timeout: 30 });
    await ct.create({ protocol: 'icmp', src: '10.2.0.1', dst: '10.2.0.2', icmp: { type: 8, code: 0, id: 77 }, timeout: 30 });
    await ct.create({ protocol: 'icmpv6', src: 'fd00::1', dst: 'fd00::3', icmp: { type: 128, code: 0, id: 78 }, timeout: 30 });
    await ct.create({ protocol: 'sctp', src: '10.3.0.1', dst: '10.3.0.2', sport: 3000, dport: 3868, state: 'ESTABLISHED', timeout: 100 });
    await ct.create({ protocol: 'gre', src: '10.4.0.1', dst: '10.4.0.2', sport: 0, dport: 0, timeout: 100 });
    await ct.create({ protocol: 99, src: '10.5.0.1', dst: '10.5.0.2', timeout: 100 });
    const all = [];
    for await (const e of ct.list()) all.push(e);
    const byProto = new Map(all.map((e) => [e.protocol, e]));
    expect(byProto.get('udp')).toMatchObject({ family: 'ipv6', orig: { src: 'fd00::1', dst: 'fd00::2', sport: 5000, dport: 53 }, unreplied: true });
    expect(byProto.get('icmp')?.orig.icmp).toEqual({ type: 8, code: 0, id: 77 });
    expect(byProto.get('icmp')?.reply.icmp?.type).toBe(0);
    expect(byProto.get('icmpv6')?.orig.icmp).toEqual({ type: 128, code: 0, id: 78 });
    expect(byProto.get('sctp')).toMatchObject({ state: 'ESTABLISHED', orig: { sport: 3000, dport: 3868 } });
    expect(byProto.get('gre')).toBeDefined();
    expect(byProto.get(99)).toMatchObject({ protocolNumber: 99, family: 'ipv4' });
    expect(ns.conntrackCount()).toBe(all.length);
  });

  it('create refuses a duplicate with EEXIST', async () => {
    const spec = { protocol: 'tcp' as const, src: '10.9.0.1', dst: '10.9.0.2', sport: 1, dport: 2, state: 'ESTABLISHED', timeout: 60 };
    await ct.create(spec);
    await expect(ct.create(spec)).rejects.toMatchObject({ code: 'EEXIST', name: 'ConntrackError' });
  });

  it('delete by entry uses the id: a new flow that reused the tuple is never hit', async () => {
    const tuple = { protocol: 'tcp' as const, src: '10.7.0.1', dst: '10.7.0.2', sport: 1111, dport: 80 };
    await ct.create({ ...tuple, state: 'ESTABLISHED', timeout: 424800 });
    const old = await ct.get(tuple);
    expect(old).not.toBeNull();
    expect(await ct.delete(old!)).toBe(true);
    expect(await ct.get(tuple)).toBeNull();
    // The tuple comes back as a different flow. The kernel's id is a hash over the entry's
    // address, so a flow reallocated in the very same slot gets the same id: allocate
    // other entries first, as a busy table would.
    let reused = null;
    for (let round = 0; round < 20 && (!reused || reused.id === old!.id); round++) {
      if (reused) await ct.delete(tuple);
      for (let i = 0; i < 16; i++) await ct.create({ protocol: 'udp', src: '10.8.0.1', dst: '10.8.0.2', sport: round * 100 + i, dport: 9, timeout: 60 });
      await ct.create({ ...tuple, state: 'ESTABLISHED', timeout: 424800 });
      reused = await ct.get(tuple);
    }
    expect(reused!.id).not.toBe(old!.id);
    // Deleting the old entry again answers "already gone" and leaves the new flow alone.
    expect(await ct.delete(old!)).toBe(false);
    expect((await ct.get(tuple))?.id).toBe(reused!.id);
    // A bare tuple (no id) does delete it.
    expect(await ct.delete(tuple)).toBe(true);
    expect(await ct.delete(tuple)).toBe(false);
  });

  it('get and delete by tuple take the original tuple only, never an entry whose reply it is (a NAT mapping)', async () => {
    // DNAT: 10.6.0.1:1003 -> 10.6.0.2:80, answered by 10.6.9.9:8080. The kernel's lookup finds
    // an entry by either direction's tuple.
    await ct.create({ protocol: 'tcp', src: '10.6.0.1', dst: '10.6.0.2', sport: 1003, dport: 80, state: 'ESTABLISHED', timeout: 3000, reply: { src: '10.6.9.9', dst: '10.6.0.1', sport: 8080, dport: 1003 } });
    const replyAsOrig = { protocol: 'tcp' as const, src: '10.6.9.9', dst: '10.6.0.1', sport: 8080, dport: 1003 };
    expect(await ct.get(replyAsOrig)).toBeNull();
    expect(await ct.delete(replyAsOrig)).toBe(false);
    // Not even with the entry's own id.
    const orig = { protocol: 'tcp' as const, src: '10.6.0.1', dst: '10.6.0.2', sport: 1003, dport: 80 };
    const id = (await ct.get(orig))?.id as number;
    expect(await ct.get({ ...replyAsOrig, id })).toBeNull();
    expect(await ct.delete({ ...replyAsOrig, id })).toBe(false);
    expect(ns.conntrackList(['-s', '10.6.0.1'])).toHaveLength(1);
    // Its original tuple finds and deletes it.
    expect((await ct.get(orig))?.reply).toMatchObject({ src: '10.6.9.9', sport: 8080 });
    expect(await ct.delete(orig)).toBe(true);
    expect(ns.conntrackList(['-s', '10.6.0.1'])).toHaveLength(0);
  });

  it('bad specs throw before any kernel I/O', async () => {
    const before = ns.conntrackCount();
    await expect(ct.create({ protocol: 'tcp', src: '10.0.0.1', dst: 'fd00::1', sport: 1, dport: 2, timeout: 5 })).rejects.toThrow(/dst/);
    await expect(ct.delete({ protocol: 'tcp', src: 'x', dst: '10.0.0.2', sport: 1, dport: 2 })).rejects.toThrow(/src/);
    expect(ns.conntrackCount()).toBe(before);
  });
});

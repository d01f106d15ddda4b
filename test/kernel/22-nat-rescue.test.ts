/**
 * The backend-change rescue, with real traffic through an nft DNAT rule. A UDP client keeps
 * sending to a service address; the rule moves from backend A to B and A's address goes
 * away, but the flow's conntrack entry still points at A and every packet refreshes it: a
 * black hole. One ctpurge call ends it. For TCP, the entries of connections to A go while
 * live connections to B keep working.
 */
import { afterEach, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Conntrack } from '../../src/index.js';
import { describeKernel } from '../helpers/kernel.js';
import { ctpurge } from '../helpers/cli.js';
import { BACKEND_A, BACKEND_B, CLIENT_IP, natLab, spawnIn, VIP, type NatLab } from '../helpers/natLab.js';
import { waitFor } from '../helpers/wait.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const EXAMPLE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../examples/purge-on-endpoint-removal.mjs');

describeKernel('stale NAT flows after a backend change', () => {
  let lab: NatLab | undefined;
  const children: { kill(): boolean }[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) c.kill();
    lab?.destroy();
    lab = undefined;
  });

  it('UDP: the entry keeps pointing at the vanished backend A (B gets nothing) until one ctpurge call; then B receives within a second and 300 unrelated flows stay', async () => {
    const port = 5353;
    lab = natLab('udp', port);
    lab.route(BACKEND_A);
    // 300 unrelated UDP flows on the router: other clients, other backends, other services.
    const unrelated: string[] = [];
    for (let i = 0; i < 300; i++) {
      const client = `10.50.${i >> 7}.${(i & 127) + 1}`;
      const nat = i % 3 === 0 ? ['--reply-src', '10.77.2.30', '--reply-dst', client, '--reply-port-src', String(port), '--reply-port-dst', String(30000 + i)] : [];
      unrelated.push(['-I', '-p', 'udp', '-s', client, '-d', i % 2 ? VIP : '10.77.9.10', '--sport', String(30000 + i), '--dport', String(i % 4 ? port : 53), ...nat, '-t', '600'].join(' '));
    }
    lab.router.load(unrelated);
    const router = await Conntrack.open({ netns: lab.router.name });
    try {
      const unrelatedBefore = await router.count({ src: '10.50.0.0/16' });
      expect(unrelatedBefore).toBe(300);

      // One client flow, fixed source port, a packet every 20 ms.
      const sender = spawnIn(lab.client, 'hping3', ['-q', '-2', '-s', '40000', '-k', '-p', String(port), '-d', '16', '-i', 'u20000', VIP]);
      children.push(sender);
      await waitFor('backend A to receive the flow', () => lab!.received(BACKEND_A) > 0, 5000);

      // The backend moves: the rule points at B, A's address goes away.
      lab.route(BACKEND_B);
      lab.removeBackend(BACKEND_A);
      const aAfterMove = lab.received(BACKEND_A);
      await sleep(1500);
      // The black hole: nothing reaches B, nothing reaches A any more, and the entry is
      // still there, pointing at A, kept alive by the client's packets.
      expect(lab.received(BACKEND_B)).toBe(0);
      expect(lab.received(BACKEND_A)).toBe(aAfterMove);
      const stale = [];
      for await (const e of router.list({ protocol: 'udp', replySrc: BACKEND_A })) stale.push(e);
      expect(stale).toHaveLength(1);
      expect(stale[0]).toMatchObject({ orig: { src: CLIENT_IP, dst: VIP, sport: 40000, dport: port }, reply: { src: BACKEND_A, dst: CLIENT_IP } });

      // The rescue: one command.
      const r = ctpurge(['purge', '--netns', lab.router.name, '--proto', 'udp', '--reply-src', BACKEND_A, '--json']);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const summary = JSON.parse(r.stdout.trim().split('\n').pop() as string) as { deleted: number };
      expect(summary.deleted).toBe(1);
      const took = await waitFor('backend B to receive the flow', () => lab!.received(BACKEND_B) > 0, 1000);
      expect(took).toBeLessThanOrEqual(1000);

      // The client's next packets made a new entry, NAT'd to B; the 300 others are untouched.
      const fresh = [];
      for await (const e of router.list({ protocol: 'udp', src: CLIENT_IP, sport: 40000 })) fresh.push(e);
      expect(fresh).toHaveLength(1);
      expect(fresh[0]!.reply.src).toBe(BACKEND_B);
      expect(await router.count({ src: '10.50.0.0/16' })).toBe(300);
    } finally {
      await router.close();
    }
  });

  it('TCP: the entries of connections to the vanished backend A go, live connections to B stay and keep working', async () => {
    const port = 8080;
    lab = natLab('tcp', port);
    lab.route(BACKEND_A);
    const server = spawnIn(lab.backends, process.execPath, [
      '-e',
      `const net = require('node:net');
       let up = 0;
       for (const a of ['${BACKEND_A}', '${BACKEND_B}']) net.createServer((s) => s.on('error', () => {}).pipe(s)).listen(${port}, a, () => { if (++up === 2) console.log('ready'); });`,
    ]);
    children.push(server);
    await new Promise<void>((resolve, reject) => {
      server.stdout.once('data', () => resolve());
      server.once('exit', (code) => reject(new Error(`echo server exited ${code}`)));
    });
    // The client holds groups of connections open and, asked "ping G", says how many of
    // group G echo a byte back within a second.
    const client = spawnIn(lab.client, process.execPath, [
      '-e',
      `const net = require('node:net');
       const groups = [];
       require('node:readline').createInterface({ input: process.stdin }).on('line', async (line) => {
         const [cmd, arg] = line.split(' ');
         if (cmd === 'open') {
           const g = [];
           for (let i = 0; i < Number(arg); i++) {
             g.push(await new Promise((ok, ko) => { const s = net.connect(${port}, '${VIP}', () => ok(s)); s.on('error', ko); }));
             g[g.length - 1].on('error', () => {});
           }
           groups.push(g);
           console.log('opened ' + (groups.length - 1));
         } else if (cmd === 'ping') {
           const g = groups[Number(arg)];
           const ok = await Promise.all(g.map((s) => new Promise((res) => {
             const t = setTimeout(() => res(false), 1000);
             s.once('data', () => { clearTimeout(t); res(true); });
             s.write('x');
           })));
           console.log('echo ' + ok.filter(Boolean).length + ' ' + g.length);
         }
       });`,
    ]);
    children.push(client);
    const replies = createInterface({ input: client.stdout })[Symbol.asyncIterator]();
    const ask = async (line: string): Promise<string> => {
      client.stdin.write(`${line}\n`);
      const next = await replies.next();
      return String(next.value);
    };

    const router = await Conntrack.open({ netns: lab.router.name });
    try {
      expect(await ask('open 3')).toBe('opened 0');
      expect(await ask('ping 0')).toBe('echo 3 3');
      expect(await router.count({ protocol: 'tcp', replySrc: BACKEND_A })).toBe(3);

      lab.route(BACKEND_B);
      expect(await ask('open 4')).toBe('opened 1');
      expect(await router.count({ protocol: 'tcp', replySrc: BACKEND_B })).toBe(4);
      expect(await ask('ping 1')).toBe('echo 4 4');
      lab.removeBackend(BACKEND_A);
      // A's connections are dead now, their entries stay (ESTABLISHED lasts 5 days).
      expect(await ask('ping 0')).toBe('echo 0 3');
      expect(await router.count({ protocol: 'tcp', replySrc: BACKEND_A })).toBe(3);

      const r = await router.purge({ protocol: 'tcp', replySrc: BACKEND_A });
      expect(r.deleted).toBe(3);
      expect(await router.count({ protocol: 'tcp', replySrc: BACKEND_A })).toBe(0);
      expect(await router.count({ protocol: 'tcp', replySrc: BACKEND_B })).toBe(4);
      expect(await ask('ping 1')).toBe('echo 4 4');
      expect(await router.count({ protocol: 'tcp', replySrc: BACKEND_B })).toBe(4);
    } finally {
      await router.close();
      client.stdin.end();
    }
  });

  it('the example controller (examples/purge-on-endpoint-removal.mjs) purges a removed backend as soon as its endpoints change', async () => {
    const port = 5353;
    lab = natLab('udp', port);
    lab.route(BACKEND_A);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-endpoints-'));
    try {
      const endpoints = path.join(dir, 'endpoints.json');
      writeFileSync(endpoints, JSON.stringify({ protocol: 'udp', backends: [BACKEND_A] }));
      const sender = spawnIn(lab.client, 'hping3', ['-q', '-2', '-s', '40001', '-k', '-p', String(port), '-d', '16', '-i', 'u20000', VIP]);
      children.push(sender);
      await waitFor('backend A to receive the flow', () => lab!.received(BACKEND_A) > 0, 5000);
      // The controller runs in another namespace (the client's) and acts on the router's table by path.
      const controller = spawnIn(lab.client, process.execPath, [EXAMPLE, endpoints, `/var/run/netns/${lab.router.name}`]);
      children.push(controller);
      const output = createInterface({ input: controller.stdout })[Symbol.asyncIterator]();
      expect(String((await output.next()).value)).toContain(`watching ${endpoints}`);

      lab.route(BACKEND_B);
      lab.removeBackend(BACKEND_A);
      await sleep(1000);
      expect(lab.received(BACKEND_B)).toBe(0);
      // The endpoints change: A is gone, B is in.
      writeFileSync(endpoints, JSON.stringify({ protocol: 'udp', backends: [BACKEND_B] }));
      expect(String((await output.next()).value)).toMatch(new RegExp(`backend ${BACKEND_A.replace(/\./g, '\\.')} removed: 1 udp entries deleted`));
      await waitFor('backend B to receive the flow', () => lab!.received(BACKEND_B) > 0, 1000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

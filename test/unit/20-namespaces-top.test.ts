/** Naming containers from their cgroups, and top's rates and text, without a kernel. */
import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { containerOfCgroup, findNamespaces, type Unreadable } from '../../src/namespaces.js';
import { NetnsReadings, renderTop, TopTracker, type TopReading, type TopSnapshot } from '../../src/cli/topModel.js';

const ID = 'a'.repeat(40) + '0123456789abcdef01234567';

describe('containers named from /proc/PID/cgroup', () => {
  it('reads the paths of Docker, containerd (Kubernetes), CRI-O and Podman, v1 and v2', () => {
    expect(containerOfCgroup(`0::/system.slice/docker-${ID}.scope\n`)).toEqual({ runtime: 'docker', id: ID });
    expect(containerOfCgroup(`12:pids:/docker/${ID}\n11:memory:/docker/${ID}\n`)).toEqual({ runtime: 'docker', id: ID });
    expect(containerOfCgroup(`0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f1e2d3c_4b5a_6978_8a9b_000000000004.slice/cri-containerd-${ID}.scope`)).toEqual({
      runtime: 'containerd',
      id: ID,
      podUid: '0f1e2d3c-4b5a-6978-8a9b-000000000004',
    });
    expect(containerOfCgroup(`8:pids:/kubepods/besteffort/pod0f1e2d3c-4b5a-6978-8a9b-000000000004/${ID}`)).toMatchObject({ runtime: 'containerd', podUid: '0f1e2d3c-4b5a-6978-8a9b-000000000004' });
    expect(containerOfCgroup(`0::/machine.slice/libpod-${ID}.scope/container`)).toEqual({ runtime: 'podman', id: ID });
    expect(containerOfCgroup(`0::/kubepods.slice/crio-${ID}.scope`)).toMatchObject({ runtime: 'cri-o', id: ID });
  });

  it('a process that is no container, or an id that is not 64 hex digits, is none', () => {
    expect(containerOfCgroup('0::/user.slice/user-0.slice/session-1.scope\n')).toBeNull();
    expect(containerOfCgroup(`0::/system.slice/docker-${ID.slice(1)}.scope\n`)).toBeNull();
    expect(containerOfCgroup(`0::/system.slice/docker.service\n`)).toBeNull();
    expect(containerOfCgroup('')).toBeNull();
  });
});

const reading = (at: number, count: number, drop = 0): TopReading => ({ at, count, max: 1000, drop, earlyDrop: 0, insertFailed: 0 });

describe('finding namespaces', () => {
  it('a namespace file that is there but cannot be read is reported, not left out silently; a gone one is no news', async () => {
    // A proc of links to this process's own (read only), a process whose ns/net cannot be read
    // (a link loop stands in for the EACCES of another user's without CAP_SYS_PTRACE), and none
    // for a process that exited.
    const proc = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-proc-'));
    try {
      symlinkSync('/proc/self', path.join(proc, 'self'));
      symlinkSync('/proc/self', path.join(proc, '1'));
      mkdirSync(path.join(proc, '4242/ns'), { recursive: true });
      symlinkSync('net', path.join(proc, '4242/ns/net'));
      mkdirSync(path.join(proc, '4343'));
      const unreadable: Unreadable[] = [];
      const found = await findNamespaces({ proc, namespaceDirs: [path.join(proc, 'none')] }, unreadable);
      expect(found.map((f) => f.name)).toEqual(['host']);
      expect(unreadable).toEqual([{ path: path.join(proc, '4242/ns/net'), code: 'ELOOP' }]);
    } finally {
      rmSync(proc, { recursive: true, force: true });
    }
  });
});

describe("top's rates", () => {
  it('per second between two readings: the counter, the per-CPU drops, the events counted between them', () => {
    const t = new TopTracker();
    expect(t.reading(reading(0, 100))).toBeNull();
    t.addEvents({ new: 30, update: 0, destroy: 10, lost: 0 });
    t.addEvents({ new: 20, update: 5, destroy: 0, lost: 0 });
    expect(t.reading(reading(2000, 180, 6))).toEqual({ entries: 40, new: 25, destroy: 5, drop: 3, earlyDrop: 0, insertFailed: 0 });
    // The events were reset with the reading; a counter that went back is no negative rate.
    expect(t.reading(reading(3000, 170, 2))).toEqual({ entries: -10, new: 0, destroy: 0, drop: 0, earlyDrop: 0, insertFailed: 0 });
  });

  it('with --all-netns: a namespace found or gone is no burst in the rates; each row its own change', () => {
    const r = new NetnsReadings();
    const t = new TopTracker();
    const ns = (key: number, name: string, count: number, drop = 0) => ({ key, name, counters: { count, max: 1000, drop, earlyDrop: 0, insertFailed: 0 } });
    const first = r.read(0, [ns(1, 'host', 100, 5)]);
    expect(t.reading(first.reading)).toBeNull();
    // 'blue' is found with 5,000 entries and 40 drops so far: the sum shows them, the rates do not.
    const second = r.read(1000, [ns(1, 'host', 110, 7), ns(2, 'blue', 5000, 40)]);
    expect(second.reading.count).toBe(5110);
    expect(t.reading(second.reading)).toMatchObject({ entries: 10, drop: 2 });
    expect(second.namespaces).toEqual([
      { name: 'host', count: 110, max: 1000, change: 10, drops: 2 },
      { name: 'blue', count: 5000, max: 1000, change: null, drops: null },
    ]);
    // 'host' is gone (its 110 entries with it), 'blue' changed by -200 over 2 s.
    const third = r.read(3000, [ns(2, 'blue', 4800, 40)]);
    expect(third.reading.count).toBe(4800);
    expect(t.reading(third.reading)).toMatchObject({ entries: -100, drop: 0 });
    // Found again later: a new start, no rate from its old reading.
    const fourth = r.read(4000, [ns(1, 'host', 300, 9), ns(2, 'blue', 4800, 41)]);
    expect(fourth.namespaces[0]).toMatchObject({ name: 'host', change: null });
    expect(t.reading(fourth.reading)).toMatchObject({ entries: 0, drop: 1 });
  });

  it('lost events are kept and said, never silent', () => {
    const t = new TopTracker();
    t.addEvents({ new: 5, update: 0, destroy: 0, lost: 12 }, Date.parse('2026-12-07T10:00:05Z'));
    t.addEvents({ new: 0, update: 0, destroy: 0, lost: 3 }, Date.parse('2026-12-07T10:00:07Z'));
    expect(t.lost).toBe(15);
    const s: TopSnapshot = { netns: 'blue', time: '', reading: reading(0, 500), rates: null, eventsLost: t.lost, lostAt: '10:00:07', summary: null, summaryAge: null, summaryMs: null, filter: '' };
    const lines = renderTop(s);
    expect(lines[0]).toMatch(/^table █{20}·{20} 50\.0% {2}500 of 1,000 entries {2}-$/);
    expect(lines).toContain('events lost: 15 (the kernel dropped them, last at 10:00:07); the entries are the kernel\'s counter, the table re-read');
    expect(lines.at(-1)).toBe('reading the table...');
  });

  it('with --all-netns: the busiest namespace fills the bar, a row each, the busiest first or by name', () => {
    const rows = [
      { name: 'blue', count: 10, max: 1000, change: 1, drops: 0 },
      { name: 'ctr web (pid 4)', count: 900, max: 1000, change: -5, drops: 2 },
    ];
    const s: TopSnapshot = { netns: null, time: '', reading: reading(0, 910), rates: null, eventsLost: 0, lostAt: null, summary: null, summaryAge: null, summaryMs: null, filter: '', namespaces: rows };
    const lines = renderTop(s);
    expect(lines[0]).toMatch(/^busiest ctr web \(pid 4\): .* 90\.0% {2}910 entries in 2 namespaces/);
    expect(lines[1]).not.toContain('new ');
    const names = (sort: 'count' | 'name') => renderTop(s, sort).filter((l) => /^(blue|ctr)/.test(l)).map((l) => l.split('  ')[0]?.trim());
    expect(names('count')).toEqual(['ctr web (pid 4)', 'blue']);
    expect(names('name')).toEqual(['blue', 'ctr web (pid 4)']);
  });
});

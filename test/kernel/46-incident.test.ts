import { expect, it } from 'vitest';
// @ts-expect-error: a plain ES module script without types (it is also npm run demo -- incident).
import { runIncident, SYNS } from '../../scripts/incident.mjs';
import { describeKernel } from '../helpers/kernel.js';

describeKernel('a table-full incident and its rescue (npm run demo -- incident)', () => {
  it('full of idle ASSURED flows: new connections are dropped; ctpurge --idle --when-above brings them back', async () => {
    const lines: string[] = [];
    const r = await runIncident({ log: (s: string) => lines.push(s) });
    expect(r.full).toBe(r.max);
    // While full: the kernel refuses hping3's SYNs and drops every connection attempt.
    expect(r.hpingBefore.refused).toBe('Operation not permitted');
    expect(r.before.answered).toBe(0);
    expect(r.dropsBefore.drop).toBeGreaterThanOrEqual(SYNS);
    expect(r.dropsBefore.early_drop).toBe(0); // assured entries are never early-dropped
    // The rescue: under 90% within seconds, and every connection answered again.
    expect(r.reliefMs).toBeLessThan(10_000);
    expect(r.hpingAfter).toMatchObject({ sent: SYNS, answered: SYNS, refused: null });
    expect(r.after).toEqual({ answered: SYNS, failed: {} });
    expect(r.dropsAfter.drop).toBe(0);
    expect(r.daemonExit).toBe(0);
    expect(r.samples[0].usage).toBeGreaterThanOrEqual(0.99);
    expect(lines.join('\n')).toMatch(/relief after \d+\.\d+ s/);
  }, 300_000);
});

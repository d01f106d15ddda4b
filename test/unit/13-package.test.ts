/**
 * The package as npm would ship it: complete (LICENSE, deploy files, docs, every file the
 * README links to), loadable with require() on Node 20.19+, and typed without the consumer
 * installing or naming @types/node.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync, mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';

describe('the npm package', () => {
  let files: Set<string>;
  let dir: string;
  beforeAll(() => {
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' });
    files = new Set((JSON.parse(out) as { files: { path: string }[] }[])[0]?.files.map((f) => f.path));
    dir = mkdtempSync(path.join(os.tmpdir(), 'ctpurge-consumer-'));
    mkdirSync(path.join(dir, 'node_modules'));
    symlinkSync(ROOT, path.join(dir, 'node_modules', 'ctpurge'));
  }, 60_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('ships the LICENSE, the deploy files, the docs, and every local file the README links to', () => {
    for (const f of ['LICENSE', 'README.md', 'CHANGELOG.md', 'deploy/systemd/ctpurge.service', 'deploy/cron/ctpurge', 'deploy/logrotate/ctpurge', 'docs/api.md', 'dist/index.d.ts', 'binding.gyp']) {
      expect(files.has(f), f).toBe(true);
    }
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const links = [...readme.matchAll(/\]\(((?!https?:|#|mailto:)[^)#\s]+)/g)].map((m) => path.normalize(m[1] as string));
    expect(links.length).toBeGreaterThan(5);
    const missing = links.filter((l) => !files.has(l) && ![...files].some((f) => f.startsWith(`${l}/`)));
    expect(missing).toEqual([]);
  });

  it('the README is for the operator: at most 12,000 characters, in the order problem, install, table full?, CLI, API, links', () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    expect(readme.length).toBeLessThanOrEqual(12_000);
    const headings = [...readme.matchAll(/^## (.+)$/gm)].map((m) => m[1]);
    expect(headings).toEqual(['Install', 'Table full? In this order', 'CLI', 'API', 'Trying it, and contributing', 'More']);
    // The two commands a newcomer runs on a fresh clone.
    expect(readme).toMatch(/npm run demo/);
    expect(readme).toMatch(/npm test/);
  });

  it('require() works from a CommonJS consumer (Node 20.19+ loads the ES module)', () => {
    const r = spawnSync(process.execPath, ['-e', "const c = require('ctpurge'); console.log(typeof c.Conntrack, typeof c.planQuery)"], { cwd: dir, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('function function');
  });

  it('the types compile in a strict CommonJS TypeScript project with types: [] (nothing of Node named)', () => {
    writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { strict: true, module: 'nodenext', moduleResolution: 'nodenext', types: [], noEmit: true, skipLibCheck: false }, files: ['main.cts'] }));
    writeFileSync(
      path.join(dir, 'main.cts'),
      "import { Conntrack, kernelFeatures } from 'ctpurge';\nasync function main(): Promise<void> {\n  const ct = await Conntrack.open();\n  for await (const b of ct.listNdjson({ unreplied: true })) { const n: number = b.length; void n; }\n  void kernelFeatures('6.18.0', {});\n}\nvoid main;\n",
    );
    const r = spawnSync(path.join(ROOT, 'node_modules/.bin/tsc'), ['-p', dir], { encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  }, 60_000);
});

/** The examples under examples/ parse and type-check against the published API (dist/index.d.ts). */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const examples = readdirSync(path.join(root, 'examples')).filter((f) => f.endsWith('.mjs'));

describe('examples', () => {
  it('there is at least the endpoint-removal controller', () => {
    expect(examples).toContain('purge-on-endpoint-removal.mjs');
  });

  it.each(examples)('%s parses', (file) => {
    const r = spawnSync(process.execPath, ['--check', path.join(root, 'examples', file)], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('they type-check (checkJs) against the package types', () => {
    const tsc = path.join(root, 'node_modules/typescript/bin/tsc');
    const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'examples/tsconfig.json')], { encoding: 'utf8', cwd: root });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  }, 60_000);
});

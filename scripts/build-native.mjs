// Builds the addon with node-gyp against the headers of the running Node when they are
// installed next to it, so no header tarball has to be downloaded.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const args = ['rebuild', ...process.argv.slice(2)];
const prefix = path.resolve(path.dirname(process.execPath), '..');
if (!process.env.npm_config_nodedir && existsSync(path.join(prefix, 'include/node/node_api.h'))) {
  args.push(`--nodedir=${prefix}`);
}

function nodeGypBin() {
  const candidates = [];
  if (process.env.npm_execpath) {
    candidates.push(path.join(path.dirname(process.env.npm_execpath), '../node_modules/node-gyp/bin/node-gyp.js'));
  }
  candidates.push(path.join(prefix, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'));
  for (const c of candidates) if (existsSync(c)) return c;
  try {
    return require.resolve('node-gyp/bin/node-gyp.js');
  } catch {
    return null;
  }
}

const bin = nodeGypBin();
if (!bin) {
  console.error('ctpurge: node-gyp not found (it ships with npm). Run the build through npm: npm run build');
  process.exit(1);
}
const r = spawnSync(process.execPath, [bin, ...args], { stdio: 'inherit' });
process.exit(r.status ?? 1);

// Runs before node-gyp: a missing system library should read as an apt-get line,
// not as a compiler error 200 lines into the build log.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const needed = [
  { pc: 'libnetfilter_conntrack', deb: 'libnetfilter-conntrack-dev' },
  { pc: 'libmnl', deb: 'libmnl-dev' },
];

function has(cmd, args) {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

if (process.platform !== 'linux') {
  console.error('ctpurge: conntrack is a Linux kernel facility; this package only builds on Linux.');
  process.exit(1);
}

const missing = [];
// node-gyp needs a C++ compiler, make and Python: without them it prints a long traceback.
for (const [cmd, deb] of [['g++', 'g++'], ['make', 'make'], ['python3', 'python3']]) if (!has('sh', ['-c', `command -v ${cmd}`])) missing.push(deb);
if (!has('pkg-config', ['--version'])) missing.push('pkg-config', ...needed.map((n) => n.deb));
else for (const n of needed) if (!has('pkg-config', ['--exists', n.pc])) missing.push(n.deb);

if (missing.length > 0) {
  console.error(
    `ctpurge: missing what building the native addon needs: ${missing.join(', ')}\n` +
      `  Install them with:\n    sudo apt-get install -y ${[...new Set(missing)].join(' ')}\n` +
      (existsSync(new URL('./bootstrap.sh', import.meta.url)) ? `  or, in a clone, run: bash scripts/bootstrap.sh (as root), then npm ci again.` : `  then install ctpurge again.`),
  );
  process.exit(1);
}

// Runs before node-gyp: a missing system library should read as an apt-get line,
// not as a compiler error 200 lines into the build log.
import { execFileSync } from 'node:child_process';

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
if (!has('pkg-config', ['--version'])) missing.push('pkg-config', ...needed.map((n) => n.deb));
else for (const n of needed) if (!has('pkg-config', ['--exists', n.pc])) missing.push(n.deb);

if (missing.length > 0) {
  console.error(
    `ctpurge: missing system libraries needed to build the native addon: ${missing.join(', ')}\n` +
      `  Install them with:\n    sudo apt-get install -y ${[...new Set(missing)].join(' ')}\n` +
      `  or run: bash scripts/bootstrap.sh (as root), then npm ci again.`,
  );
  process.exit(1);
}

// npm's install step. The package carries a prebuilt addon for linux-x64 with glibc 2.30 or
// newer (scripts/prebuild.sh): when it loads here, nothing is compiled. Otherwise the addon is
// built from source, as in a clone; when neither works, one paragraph says what is missing and
// the command that fixes it. CTPURGE_BUILD_FROM_SOURCE=1 skips the prebuilt addon.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
// A checkout (with or without .git) builds from its sources: the package has no tsconfig.json.
const inClone = existsSync(path.join(root, 'tsconfig.json'));
// The package ships dist/: the loader's own notion of where the prebuilt addon is, and for
// which platforms (null elsewhere).
const prebuilt = inClone ? null : (await import('../dist/addon.js')).prebuiltAddon(root);

/** Loads the addon in a child process: a missing library must not take this one down. */
function tryLoad(file) {
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(file)})`], { encoding: 'utf8' });
  return r.status === 0 ? null : (r.stderr.split('\n').find((l) => /Error|cannot open|not found/i.test(l)) ?? r.stderr.trim()).trim();
}

let prebuiltProblem = null;
if (prebuilt && existsSync(prebuilt) && !process.env.CTPURGE_BUILD_FROM_SOURCE) {
  prebuiltProblem = tryLoad(prebuilt);
  if (prebuiltProblem === null) {
    console.log('ctpurge: using the prebuilt addon (linux-x64, glibc); nothing to compile');
    process.exit(0);
  }
}

const check = spawnSync(process.execPath, [path.join(here, 'check-system.mjs')], { encoding: 'utf8' });
if (check.status !== 0) {
  const lines = [];
  if (prebuiltProblem !== null) {
    lines.push(`ctpurge: the prebuilt addon does not load here (${prebuiltProblem.replace(/^Error: /, '')}).`);
    if (/libnetfilter_conntrack|libmnl|libnfnetlink/.test(prebuiltProblem)) {
      lines.push('  It needs only the runtime libraries: apt-get install -y libnetfilter-conntrack3 libmnl0');
      lines.push('  (then install ctpurge again). To build from source instead:');
    } else {
      lines.push('  Building from source instead, which needs:');
    }
  }
  process.stderr.write(`${lines.length ? `${lines.join('\n')}\n` : ''}${check.stderr}`);
  process.exit(1);
}
const build = spawnSync(process.execPath, [path.join(here, 'build-native.mjs')], { stdio: 'inherit' });
process.exit(build.status ?? 1);

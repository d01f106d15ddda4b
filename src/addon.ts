/** Loads the native addon once, from a build or the prebuilt one, with possible solutions when it cannot. */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RECORD_SIZE } from './entry.js';
import type { NativeBinding } from './native.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
let loaded: NativeBinding | undefined;

let loadedFrom: string | undefined;

/** The prebuilt addon shipped in the package for this platform (scripts/prebuild.sh), if there is one. */
export function prebuiltAddon(root = path.resolve(here, '..')): string | null {
  return process.platform === 'linux' && process.arch === 'x64' ? path.join(root, 'prebuilds/linux-x64/ctpurge.glibc.node') : null;
}

/**
 * Where the addon is looked for, in order: CTPURGE_ADDON, a build from source (a clone, or an
 * install that compiled), then the prebuilt addon in the package.
 */
function candidates(): string[] {
  const root = path.resolve(here, '..');
  const list = [];
  if (process.env.CTPURGE_ADDON) list.push(path.resolve(process.env.CTPURGE_ADDON));
  list.push(path.join(root, 'build/Release/ctpurge.node'), path.join(root, 'build/Debug/ctpurge.node'));
  const prebuilt = prebuiltAddon(root);
  if (prebuilt) list.push(prebuilt);
  return list;
}

/** The file the addon was loaded from (loading it if needed): a build from source, or the prebuilt one. */
export function nativeAddonPath(): string {
  loadNative();
  return loadedFrom as string;
}

/** Loads the addon once; the error lists what to do instead of a bare dlopen message. */
export function loadNative(): NativeBinding {
  if (loaded) return loaded;
  const tried = candidates();
  let lastError: unknown;
  for (const file of tried) {
    if (!existsSync(file)) continue;
    let binding: NativeBinding;
    try {
      binding = require(file) as NativeBinding;
    } catch (err) {
      lastError = err;
      continue;
    }
    // The record layout has one source, the addon: a stale build would be misread.
    if (binding.recordSize !== RECORD_SIZE) {
      throw new Error(`The ctpurge native addon at ${file} writes ${binding.recordSize}-byte records; this version reads ${RECORD_SIZE}. Rebuild it: npm rebuild ctpurge (or, in a clone: npm run build)`);
    }
    loaded = binding;
    loadedFrom = file;
    return loaded;
  }
  const reason = lastError instanceof Error ? lastError.message : 'the compiled addon was not found';
  const err = new Error(
    [
      `Could not load the ctpurge native addon: ${reason}`,
      `Looked in: ${tried.join(', ')}`,
      'Possible solutions:',
      '- Install the runtime libraries (all the prebuilt addon needs): apt-get install -y libnetfilter-conntrack3 libmnl0',
      '  (to build: apt-get install -y libnetfilter-conntrack-dev libmnl-dev pkg-config g++ make python3)',
      '- Rebuild the addon for this Node version: npm rebuild ctpurge  (or, in a clone: npm run build)',
      '- In a clone, run the bootstrap: npm run bootstrap',
      '- ctpurge runs on Linux only.',
    ].join('\n'),
  );
  (err as Error & { cause?: unknown }).cause = lastError;
  throw err;
}

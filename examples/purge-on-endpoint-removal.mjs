// @ts-check
// A controller that watches a service's backends and, when one goes away, deletes the
// conntrack entries still NAT'd to it, so clients' flows move to the remaining backends at
// their next packet instead of disappearing into the old address (UDP flows otherwise stay
// there for as long as the client keeps sending).
//
//   node examples/purge-on-endpoint-removal.mjs endpoints.json [netns]
//
// endpoints.json: { "protocol": "udp", "backends": ["10.244.1.7", "10.244.2.9"] }, rewritten
// by whatever knows the endpoints (a Kubernetes informer, Consul, a deploy script). Swap the
// file watch for your own source of endpoint changes; purgeRemovedBackends is the part to keep.
import { readFileSync, watchFile } from 'node:fs';
import { Conntrack } from 'ctpurge';

/**
 * Deletes the entries whose reply source is a backend that was in `before` and is not in
 * `after`: the flows the DNAT rule sent there. Returns how many entries went.
 * @param {Conntrack} ct
 * @param {'tcp' | 'udp'} protocol
 * @param {readonly string[]} before
 * @param {readonly string[]} after
 */
export async function purgeRemovedBackends(ct, protocol, before, after) {
  let deleted = 0;
  for (const backend of before.filter((b) => !after.includes(b))) {
    const r = await ct.purge({ protocol, replySrc: backend });
    deleted += r.deleted;
    console.log(`backend ${backend} removed: ${r.deleted} ${protocol} entries deleted (${r.method}, ${r.durationMs.toFixed(1)} ms)`);
  }
  return deleted;
}

/** @param {string} file @returns {{ protocol: 'tcp' | 'udp', backends: string[] }} */
function readEndpoints(file) {
  const o = JSON.parse(readFileSync(file, 'utf8'));
  if (o.protocol !== 'tcp' && o.protocol !== 'udp') throw new TypeError(`${file}: protocol must be "tcp" or "udp"`);
  if (!Array.isArray(o.backends)) throw new TypeError(`${file}: backends must be a list of addresses`);
  return { protocol: o.protocol, backends: o.backends.map(String) };
}

async function main() {
  const [file, netns] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node purge-on-endpoint-removal.mjs ENDPOINTS.json [NETNS]');
    process.exit(2);
  }
  const ct = await Conntrack.open(netns ? { netns } : {});
  let current = readEndpoints(file);
  let busy = Promise.resolve();
  watchFile(file, { interval: 100 }, () => {
    busy = busy.then(async () => {
      const next = readEndpoints(file);
      await purgeRemovedBackends(ct, next.protocol, current.backends, next.backends);
      current = next;
    }).catch((err) => console.error(`purge failed: ${err.message}`));
  });
  console.log(`watching ${file}: ${current.protocol} backends ${current.backends.join(', ')}`);
  process.once('SIGTERM', async () => {
    await busy;
    await ct.close();
    process.exit(0);
  });
}

if (import.meta.url === `file://${process.argv[1]}`) await main();

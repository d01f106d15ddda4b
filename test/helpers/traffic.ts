/** Real traffic for kernel tests: a veth pair to a peer that never answers, and hping3. */
import { spawnSync } from 'node:child_process';
import { TestNetns } from './kernel.js';

export const CT_RULE = 'table inet t {\n chain o {\n type filter hook output priority 0;\n ct state new counter\n }\n}\n';

/**
 * A client namespace with a veth to a peer, and conntrack active in the client. By default
 * the peer never answers (no address, a static neighbour on the client). With peerSends, the
 * peer has its address so the test can make it send (hping3), but its own stack drops
 * everything it receives, so nothing answers on its own. With peerAnswers, the peer is a
 * plain host: real connections to it are replied, ASSURED and ESTABLISHED.
 */
export function trafficPair(options: { peerSends?: boolean; peerAnswers?: boolean } = {}): { client: TestNetns; peer: TestNetns; peerIp: string } {
  const client = TestNetns.create('ctp-cli');
  const peer = TestNetns.create('ctp-peer');
  const a = `v${client.name.slice(-6)}`;
  const b = `p${peer.name.slice(-6)}`;
  client.exec('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
  client.exec('ip', ['link', 'set', b, 'netns', peer.name]);
  client.exec('ip', ['addr', 'add', '10.99.0.1/24', 'dev', a]);
  client.exec('ip', ['link', 'set', a, 'up']);
  if (options.peerSends || options.peerAnswers) peer.exec('ip', ['addr', 'add', '10.99.0.2/24', 'dev', b]);
  if (options.peerSends) {
    peer.exec('nft', ['-f', '-'], 'table inet p {\n chain i {\n type filter hook input priority 0;\n drop\n }\n}\n');
  }
  peer.exec('ip', ['link', 'set', b, 'up']);
  // No address on the peer side and a static neighbour: packets leave, nothing answers.
  if (!options.peerSends && !options.peerAnswers) client.exec('ip', ['neigh', 'add', '10.99.0.2', 'lladdr', '02:00:00:00:00:02', 'dev', a, 'nud', 'permanent']);
  client.exec('nft', ['-f', '-'], CT_RULE);
  return { client, peer, peerIp: '10.99.0.2' };
}

export function hpingAcks(ns: TestNetns, ip: string, count: number, sport = 20000, dport = 80): void {
  spawnSync('ip', ['netns', 'exec', ns.name, 'hping3', '-q', '-A', '-p', String(dport), '-s', String(sport), '-c', String(count), '-i', 'u100', ip], { stdio: 'ignore', timeout: 60_000 });
}


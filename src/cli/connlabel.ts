/**
 * Connection label names, as iptables' connlabel match and conntrack -l read them: one
 * "BIT NAME" per line of /etc/xtables/connlabel.conf (CTPURGE_CONNLABEL_CONF to read another).
 */
import { readFileSync } from 'node:fs';
import { nearest } from '../parse/nearest.js';

export const CONNLABEL_CONF = '/etc/xtables/connlabel.conf';

/** The names of a connlabel.conf text: name -> bit (the first line that names it wins, as in libnetfilter_conntrack). */
export function parseConnlabels(text: string): Map<string, number> {
  const names = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+(\S+)/.exec(line);
    if (!m || line.trimStart().startsWith('#')) continue;
    const bit = Number(m[1]);
    if (bit <= 127 && !names.has(m[2] as string)) names.set(m[2] as string, bit);
  }
  return names;
}

/** The bit of a label name, or a RangeError naming the option and the file. */
export function labelBit(name: string, option: string, file = process.env.CTPURGE_CONNLABEL_CONF || CONNLABEL_CONF): number {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new RangeError(`${option}: label ${JSON.stringify(name.slice(0, 40))} is not a bit number, and ${file} cannot be read (${code}) to look the name up`);
  }
  const names = parseConnlabels(text);
  const bit = names.get(name);
  if (bit === undefined) {
    const near = nearest(name, [...names.keys()]);
    throw new RangeError(`${option}: unknown label ${JSON.stringify(name.slice(0, 40))}${near ? ` (did you mean ${near}?)` : ''} (not in ${file}; give a name from it or a bit number 0-127)`);
  }
  return bit;
}

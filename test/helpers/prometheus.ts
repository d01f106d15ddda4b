import { expect } from 'vitest';

/** A strict parser for the Prometheus text format, enough to check what we write. */
export function parsePrometheus(text: string): Map<string, { type: string; help: string; value: number; labels: string }> {
  const out = new Map<string, { type: string; help: string; value: number; labels: string }>();
  const help = new Map<string, string>();
  const type = new Map<string, string>();
  expect(text.endsWith('\n')).toBe(true);
  for (const line of text.trimEnd().split('\n')) {
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (m) {
      help.set(m[1] as string, m[2] as string);
      continue;
    }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge)$/.exec(line);
    if (m) {
      type.set(m[1] as string, m[2] as string);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (-?[0-9.e+]+)$/.exec(line);
    if (!m) throw new Error(`not a metric line: ${line}`);
    const name = m[1] as string;
    expect(type.has(name), `TYPE before ${name}`).toBe(true);
    expect(help.has(name), `HELP before ${name}`).toBe(true);
    out.set(name, { type: type.get(name) as string, help: help.get(name) as string, value: Number(m[3]), labels: m[2] ?? '' });
  }
  return out;
}


/** The series of one metric family: its label set (the text between braces) -> value. */
export function seriesOf(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m) out.set(m[1] ?? '', Number(m[2]));
  }
  return out;
}

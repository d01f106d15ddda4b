/**
 * Rules in a file (--rules FILE, check-rules FILE): several named purges in one run, for a
 * daemon, unit or DaemonSet that needs more than one policy. YAML, read with the `yaml`
 * package; each rule is the CLI's own options, written as keys, and is validated by the CLI's
 * parser, so a rule means exactly what the same options mean on the command line:
 *
 *   rules:
 *     stale-unreplied:
 *       unreplied: true
 *       older: 1h
 *     vanished-peers:
 *       state: ESTABLISHED
 *       idle: 1d
 *       grace: 60s
 *       except:
 *         - { dst: 10.1.2.3, dport: 5432 }
 *
 * An error names the file, the line and the key: `rules.yaml:7: vanished-peers: --idle: ...`.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node, type Pair, type YAMLMap } from 'yaml';
import { nearest } from '../parse/nearest.js';
import { RULE_NAME } from '../purge.js';
import { OPTIONS, parseArgs, RULE_OPTIONS, UsageError, type ParsedArgs } from './args.js';

/** Selector options a rule can use (the CLI's, with their names). */
const SELECTORS = OPTIONS.filter((o) => o.field !== undefined);
const RULE_KEYS = [...SELECTORS.map((o) => o.name), ...RULE_OPTIONS];
/** More would be a file nobody reviews, and as many metric series per name. */
export const MAX_RULES = 64;

export interface Rule {
  /** Its name in the file: in its summary line, its audit-log lines ("rule") and its metrics (rule="..."). */
  readonly name: string;
  /** The rule's options as the CLI parsed them (query, grace, limit, maxDelete). */
  readonly args: Pick<ParsedArgs, 'query' | 'grace' | 'limit' | 'maxDelete'>;
  /** The line it starts on. */
  readonly line: number;
  /** The line of each of its keys (an error found later names the key's line). */
  readonly keyLines: Readonly<Record<string, number>>;
}

export interface RuleSet {
  readonly file: string;
  readonly rules: readonly Rule[];
}

/** A rules file is small: a larger one is a mistake (a log, a dump), refused before it is parsed. */
export const MAX_RULES_BYTES = 1 << 20;

/** The text of a rules file, or a UsageError naming it. */
export function readRulesText(file: string): string {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer (nor a device for its carrier);
    // anything but a regular file is refused below, before a byte is read.
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw new UsageError(`--rules: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const tooLarge = () => new UsageError(`--rules: ${file} is larger than ${MAX_RULES_BYTES} bytes; is it the rules file?`);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new UsageError(`--rules: ${file} is ${st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : 'a device'}, not a file; refusing`);
    if (st.size > MAX_RULES_BYTES) throw tooLarge();
    // At most one byte more than allowed: a file that grows while it is read is refused too.
    const buf = Buffer.alloc(MAX_RULES_BYTES + 1);
    let n = 0;
    for (let r = 1; r > 0 && n < buf.length; n += r) r = readSync(fd, buf, n, buf.length - n, null);
    if (n > MAX_RULES_BYTES) throw tooLarge();
    return buf.toString('utf8', 0, n);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`--rules: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  } finally {
    closeSync(fd);
  }
}

/** Reads and validates a rules file; a UsageError (exit 2) names the file, line and key. */
export function loadRules(file: string): RuleSet {
  return parseRules(readRulesText(file), file);
}

/** The same, from the file's text (check-rules and the tests). */
export function parseRules(text: string, file: string): RuleSet {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (node: Node | null | undefined) => (node?.range ? lines.linePos(node.range[0]).line : 1);
  const fail = (node: Node | null | undefined, message: string): never => {
    throw new UsageError(`${file}:${at(node)}: ${message}`);
  };
  const bad = doc.errors[0];
  // linePos is only filled with prettyErrors: the line comes from the error's offset.
  if (bad) throw new UsageError(`${file}:${bad.linePos?.[0]?.line ?? lines.linePos(bad.pos[0]).line}: not valid YAML: ${bad.message.split('\n')[0]}`);
  const root = doc.contents;
  if (!isMap(root)) return fail(root, 'expected a mapping with "rules:"');
  for (const pair of root.items) {
    const key = keyOf(pair);
    if (key !== 'rules') fail(pair.key as Node, `unknown key ${JSON.stringify(key)} (the file has one key: rules)`);
  }
  const list = root.get('rules', true) as Node | undefined;
  if (!isMap(list) || list.items.length === 0) return fail(list ?? root, 'rules: expected a mapping of rule names to their options, with at least one rule');
  if (list.items.length > MAX_RULES) fail(list, `rules: at most ${MAX_RULES} rules`);
  const rules: Rule[] = [];
  for (const pair of list.items) {
    const name = keyOf(pair);
    if (!RULE_NAME.test(name)) fail(pair.key as Node, `rule name ${JSON.stringify(name.slice(0, 40))}: use lowercase letters, digits, - and _ (it becomes a metrics label)`);
    const body = pair.value as Node | null;
    if (!isMap(body) || body.items.length === 0) return fail(body ?? (pair.key as Node), `${name}: expected the rule's options, e.g. { unreplied: true, older: 1h }`);
    const argv: string[] = [];
    for (const item of body.items) argv.push(...optionArgs(item, name, fail));
    let parsed: ParsedArgs;
    try {
      parsed = parseArgs(argv);
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      // The parser names the option: find its key's line.
      const opt = /^--([a-z-]+)/.exec(err.message)?.[1];
      const item = body.items.find((i) => keyOf(i) === opt);
      return fail((item?.key as Node | undefined) ?? body, `${name}: ${err.message}`);
    }
    if (parsed.query && Object.keys(parsed.query).length === 0) fail(body, `${name}: no selector (a rule purges what its selectors select)`);
    const keyLines = Object.fromEntries(body.items.map((i) => [keyOf(i), at(i.key as Node)]));
    rules.push(Object.freeze({ name, line: at(pair.key as Node), keyLines: Object.freeze(keyLines), args: Object.freeze({ query: parsed.query, grace: parsed.grace, limit: parsed.limit, maxDelete: parsed.maxDelete }) }));
  }
  return Object.freeze({ file, rules: Object.freeze(rules) });
}

function keyOf(pair: Pair): string {
  const k = pair.key;
  return isScalar(k) ? String(k.value) : String(k);
}

/** One key of a rule as command-line words: `idle: 1d` is `--idle 1d`, `unreplied: true` is `--unreplied`. */
function optionArgs(item: Pair, rule: string, fail: (node: Node | null | undefined, message: string) => never): string[] {
  const key = keyOf(item);
  const node = item.key as Node;
  if (!RULE_KEYS.includes(key)) {
    const near = nearest(key, RULE_KEYS);
    const why = OPTIONS.some((o) => o.name === key) ? ' (it is not a selector or a per-rule option; give it on the command line)' : near ? ` (did you mean ${near}?)` : '';
    return fail(node, `${rule}: unknown key ${JSON.stringify(key.slice(0, 40))}${why}`);
  }
  const spec = OPTIONS.find((o) => o.name === key);
  const value = item.value as Node | null;
  if (!spec?.value) {
    // A flag: true, or left out. false would read as "not unreplied", which the flag cannot say.
    if (isScalar(value) && value.value === true) return [`--${key}`];
    return fail(value ?? node, `${rule}: ${key}: expected true (or leave the key out)`);
  }
  if (key === 'except') {
    const items = isSeq(value) ? value.items : [value];
    return items.flatMap((x) => {
      if (!isMap(x)) return fail((x as Node | null) ?? node, `${rule}: except: expected selectors, e.g. { dst: 10.1.2.3, dport: 5432 }`);
      const words = (x as YAMLMap).items.flatMap((i) => {
        if (keyOf(i) === 'except' || !SELECTORS.some((o) => o.name === keyOf(i))) return fail(i.key as Node, `${rule}: except: ${JSON.stringify(keyOf(i))} is not a selector`);
        return optionArgs(i, rule, fail);
      });
      return ['--except', words.join(' ')];
    });
  }
  const scalar = (v: Node | null): string => {
    if (!isScalar(v) || v.value === null || typeof v.value === 'object' || typeof v.value === 'boolean') return fail(v ?? node, `${rule}: ${key}: expected a value (${spec.value})`);
    // The text as written, as the command line would get it: YAML's own reading of a plain
    // scalar turns 0x16 into 22 and 9007199254740993 into ...992.
    const text = typeof v.source === 'string' ? v.source : String(v.value);
    // Each word becomes one argument: a space would split it when it stands in --except.
    if (/\s/.test(text)) return fail(v, `${rule}: ${key}: a value has no spaces`);
    return text;
  };
  if (isSeq(value)) {
    if (!spec.repeat) return fail(value, `${rule}: ${key}: takes one value, not a list`);
    return value.items.flatMap((v) => [`--${key}`, scalar(v as Node | null)]);
  }
  return [`--${key}`, scalar(value)];
}

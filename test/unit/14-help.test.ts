/**
 * Help that matches the program: each command's --help lists exactly the options the parser
 * takes for it (one table feeds both), the purge's written-out help names every purge option,
 * and the README and docs/api.md name every selector. Typos get a suggestion.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMANDS, OPTIONS, optionsOf, parseArgs, UsageError } from '../../src/cli/args.js';
import { commandHelp, MAIN_HELP } from '../../src/cli/help.js';
import { QUERY_FIELDS } from '../../src/query.js';
import { ROOT } from '../helpers/cli.js';

/** A value the option accepts, to try it on the parser. */
const SAMPLE: Record<string, string> = {
  rules: '/tmp/r.yaml', grace: '60s', status: 'ASSURED', label: '3', older: '1h', idle: '1h', state: 'ESTABLISHED', proto: 'tcp', family: 'ipv4', src: '10.0.0.1', dst: '10.0.0.1', 'reply-src': '10.0.0.1', 'reply-dst': '10.0.0.1',
  sport: '80', dport: '80', 'reply-sport': '80', 'reply-dport': '80', except: '--dport 22', mark: '1', zone: '1', 'orig-zone': '1', 'reply-zone': '1', netns: 'blue', limit: '5', 'max-delete': '5', log: '/tmp/x.log', every: '1m',
  'when-above': '50', 'metrics-file': '/tmp/m.prom', 'metrics-listen': '9469', 'lock-wait': '1s', 'pid-file': '/tmp/p.pid', output: 'conntrack', top: '3', interval: '2s',
};
/** Options that only make sense with another (the parser says so). */
const NEEDS: Record<string, string[]> = { 'no-wait': ['--grace', '1m'], adaptive: ['--every', '1m'], 'when-above': ['--every', '1m'], 'metrics-listen': ['--every', '1m'], 'pid-file': ['--every', '1m'] };

describe('help from the option table', () => {
  it.each(COMMANDS)('%s --help lists exactly the options the command takes', (command) => {
    const help = command === 'purge' ? MAIN_HELP : commandHelp(command);
    const listed = new Set([...help.matchAll(/(?:^|\s)--([a-z][a-z-]*)/gm)].map((m) => m[1] as string));
    const prefix = command === 'purge' ? [] : command === 'check-rules' ? [command, '/tmp/r.yaml'] : [command];
    for (const o of OPTIONS) {
      const argv = [...prefix, `--${o.name}`, ...(o.value ? [SAMPLE[o.name] as string] : []), ...(NEEDS[o.name] ?? [])];
      const takes = optionsOf(command).includes(o);
      if (takes) {
        expect(() => parseArgs(argv), argv.join(' ')).not.toThrow();
        expect(listed.has(o.name), `${command} --help lacks --${o.name}`).toBe(true);
      } else {
        expect(() => parseArgs(argv), argv.join(' ')).toThrow(/does not apply/);
        if (command !== 'purge') expect(listed.has(o.name), `${command} --help shows --${o.name}, which it does not take`).toBe(false);
      }
    }
  });

  it('each subcommand has its own help; `doctor --help` shows no selector', () => {
    const texts = COMMANDS.map((c) => commandHelp(c));
    expect(new Set(texts).size).toBe(COMMANDS.length);
    expect(commandHelp('doctor')).not.toMatch(/--unreplied/);
    expect(commandHelp('stats')).toMatch(/--unreplied/);
    expect(parseArgs(['stats', '--help']).help).toBe(true);
  });

  it('every selector is in the README\'s table and in docs/api.md\'s Query table, and sets a query field', () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const api = readFileSync(path.join(ROOT, 'docs/api.md'), 'utf8');
    for (const o of OPTIONS.filter((x) => x.field)) {
      expect(readme, `README: --${o.name}`).toMatch(new RegExp(`^\\|.*\`--${o.name}[ \`]`, 'm'));
      expect(QUERY_FIELDS as readonly string[]).toContain(o.field);
      expect(api, `docs/api.md: ${o.field}`).toMatch(new RegExp(`^\\|.*\`${o.field}\``, 'm'));
    }
  });

  it('typos get the nearest option, command or state', () => {
    const message = (argv: string[]) => {
      try {
        parseArgs(argv);
      } catch (err) {
        expect(err).toBeInstanceOf(UsageError);
        return (err as Error).message;
      }
      return '';
    };
    expect(message(['--unreplid'])).toBe('unknown option --unreplid (did you mean --unreplied?)');
    expect(message(['list', '--outptu', 'table'])).toMatch(/did you mean --output\?/);
    expect(message(['stast'])).toMatch(/did you mean 'stats'\?/);
    expect(message(['--xyzzy-plugh'])).toBe('unknown option --xyzzy-plugh');
  });
});

describe('the man page and the bash completion', () => {
  it('the shipped files are what the option table makes (node scripts/gen-manual.mjs)', async () => {
    const { bashCompletion, manPage } = await import('../../src/cli/manual.js');
    const { version } = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(readFileSync(path.join(ROOT, 'man/ctpurge.8'), 'utf8')).toBe(manPage(version));
    expect(readFileSync(path.join(ROOT, 'completion/ctpurge.bash'), 'utf8')).toBe(bashCompletion());
    for (const o of OPTIONS) expect(manPage(version)).toContain(`\\fB${`--${o.name}`.replace(/-/g, '\\-')}\\fR`);
  });

  it('bash completes each command\'s own options, and nothing another command takes', () => {
    const complete = (...words: string[]) => {
      const script = `source ${path.join(ROOT, 'completion/ctpurge.bash')}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _ctpurge; printf '%s\\n' "\${COMPREPLY[@]}"`;
      return execFileSync('bash', ['-c', script], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
    };
    expect(complete('ctpurge', 'list', '--ou')).toEqual(['--output']);
    expect(complete('ctpurge', '--max')).toEqual(['--max-delete']);
    expect(complete('ctpurge', 'doctor', '--unre')).toEqual([]);
    expect(complete('ctpurge', 'st')).toEqual(['stats']);
    expect(complete('ctpurge', '--family', 'ip')).toEqual(['ipv4', 'ipv6']);
    for (const c of COMMANDS) expect(new Set(complete('ctpurge', ...(c === 'purge' ? [] : [c]), '--'))).toEqual(new Set(optionsOf(c).map((o) => `--${o.name}`)));
  });
});

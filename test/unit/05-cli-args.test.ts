/** Command-line parsing: options, selectors and the options that need another. */
import { describe, expect, it } from 'vitest';
import { parseArgs, UsageError } from '../../src/cli/args.js';
import { compileQuery } from '../../src/query.js';

describe('CLI argument parsing', () => {
  it('turns selectors into a query', () => {
    const a = parseArgs(['--unreplied', '--older', '1h', '--proto', 'tcp', '--dport', '80', '--src', '10.0.0.0/8', '--src=10.2.0.0/16,10.3.0.0/16', '--mark', '0x7/0xff', '--zone', '3', '--netns', 'blue', '--dry-run']);
    expect(a.command).toBe('purge');
    // The values as given: compileQuery reads them (the one check of a selector's value).
    expect(a.query).toEqual({ unreplied: true, olderThan: '1h', protocol: 'tcp', dport: '80', src: ['10.0.0.0/8', '10.2.0.0/16', '10.3.0.0/16'], mark: '0x7/0xff', zone: 3 });
    expect(compileQuery(a.query).filter).toMatchObject({ olderThan: 3600, protocol: 6, dport: [80, 80], mark: 7, markMask: 255, zone: 3 });
    expect(a.netns).toBe('blue');
    expect(a.dryRun).toBe(true);
    expect(Object.keys(a.query)).toHaveLength(7);
  });

  it('knows the subcommands', () => {
    expect(parseArgs(['list', '-o', 'conntrack']).output).toBe('conntrack');
    expect(parseArgs(['stats', '--top', '3']).top).toBe(3);
    expect(parseArgs(['doctor', '--json']).json).toBe(true);
    expect(parseArgs(['help']).help).toBe(true);
    // check-rules --help is help, not a missing file.
    expect(parseArgs(['check-rules', '--help']).help).toBe(true);
  });

  it('refuses two output formats at once instead of picking one silently', () => {
    for (const argv of [['list', '-o', 'conntrack', '--json'], ['list', '--json', '--output', 'table']]) {
      expect(() => parseArgs(argv)).toThrow(UsageError);
      expect(() => parseArgs(argv)).toThrow(/--output (conntrack|table) and --json ask for two formats/);
    }
    expect(parseArgs(['list', '-o', 'json']).json).toBe(true);
  });

  it.each([
    [['--bogus'], /unknown option --bogus/],
    [['frobnicate'], /unknown command/],
    [['--older'], /--older needs a value/],
    [['--older', '--unreplied'], /--older needs a value/],
    [['--older', 'soon'], /--older/],
    [['--older', '-5'], /--older/],
    [['--dport', '70000'], /--dport/],
    [['--src', '300.1.1.1'], /--src/],
    [['--limit', '-1'], /--limit/],
    [['--limit', '1e9'], /--limit/],
    [['--mark', '1/2/3'], /--mark/],
    [['--zone', '65536'], /--zone/],
    [['--family', 'inet'], /--family/],
    [['--proto', 'tcpx'], /--proto/],
    [['--unreplied', 'extra'], /unexpected argument 'extra'/],
    [['--unreplied=yes'], /--unreplied takes no value/],
    [['--older', '1h', '--older', '2h'], /--older given twice/],
    [['list', '--dry-run'], /--dry-run does not apply/],
    [['--netns', '../etc'], /--netns/],
    [['--netns', 'a\0b'], /NUL/],
    [['-q', '-v', '--unreplied'], /contradict/],
    [['--src', 'x'.repeat(5000)], /longer than/],
    [['--older', '1h1h'], /^--older: "1h1h" is not a duration: give each unit once, largest first/],
    [['--older', '30m1h'], /largest first/],
    [['--unreplied', '--pid-file', '/run/x.pid'], /--pid-file needs --every/],
    [['--unreplied', '--every', '1m', '--pid-file', ''], /--pid-file: expected a file path/],
    [['--orig-zone', '70000'], /--orig-zone/],
    [['--reply-zone', 'x'], /--reply-zone/],
    // The reasons are compileQuery's, under the option's name.
    [['--mark', '0x10/0xf'], /^--mark: 0x10 has bits outside the mask 0xf/],
    [['--state', 'ESTABLISHED,'], /^--state: unknown state ""/],
    [['--dport', '2000-1000'], /^--dport: range 2000-1000 is reversed/],
    [['--family', 'ipv6', '--src', '10.0.0.0/8'], /^--src: 10.0.0.0\/8 is not ipv6/],
    [['list', '--except', '--dport 99999'], /^--except: --dport: port 99999 is outside 0-65535/],
  ])('%j is a usage error', (argv, message) => {
    expect(() => parseArgs(argv)).toThrow(UsageError);
    expect(() => parseArgs(argv)).toThrow(message);
  });
});

describe('selectors of one direction', () => {
  it('--orig-zone and --reply-zone become origZone and replyZone', () => {
    expect(parseArgs(['list', '--orig-zone', '5', '--reply-zone', '0']).query).toEqual({ origZone: 5, replyZone: 0 });
    expect(parseArgs(['--unreplied', '--every', '1m', '--pid-file', '/run/ctpurge/a.pid']).pidFile).toBe('/run/ctpurge/a.pid');
  });
});

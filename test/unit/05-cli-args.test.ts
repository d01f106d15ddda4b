/** Command-line parsing: options, selectors and the options that need another. */
import { describe, expect, it } from 'vitest';
import { parseArgs, UsageError } from '../../src/cli/args.js';

describe('CLI argument parsing', () => {
  it('turns selectors into a query', () => {
    const a = parseArgs(['--unreplied', '--older', '1h', '--proto', 'tcp', '--dport', '80', '--src', '10.0.0.0/8', '--src=10.2.0.0/16,10.3.0.0/16', '--mark', '0x7/0xff', '--zone', '3', '--netns', 'blue', '--dry-run']);
    expect(a.command).toBe('purge');
    expect(a.query).toEqual({ unreplied: true, olderThan: 3600, protocol: 6, dport: [80, 80], src: ['10.0.0.0/8', '10.2.0.0/16', '10.3.0.0/16'], mark: { value: 7, mask: 255 }, zone: 3 });
    expect(a.netns).toBe('blue');
    expect(a.dryRun).toBe(true);
    expect(Object.keys(a.query)).toHaveLength(7);
  });

  it('knows the subcommands', () => {
    expect(parseArgs(['list', '-o', 'conntrack']).output).toBe('conntrack');
    expect(parseArgs(['stats', '--top', '3']).top).toBe(3);
    expect(parseArgs(['doctor', '--json']).json).toBe(true);
    expect(parseArgs(['help']).help).toBe(true);
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

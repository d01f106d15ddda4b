/** ConntrackError from the addon's errors: codes, hints, fields. */
import { describe, expect, it } from 'vitest';
import { ConntrackError, fromNative, hintFor } from '../../src/errors.js';

describe('errors', () => {
  it('EPERM names CAP_NET_ADMIN; setns EPERM names CAP_SYS_ADMIN', () => {
    expect(hintFor('EPERM', 'recvmsg', 'open', null)).toMatch(/CAP_NET_ADMIN/);
    expect(hintFor('EPERM', 'setns', 'open', '/var/run/netns/x')).toMatch(/CAP_SYS_ADMIN/);
    expect(hintFor('ENOENT', 'open', 'open', '/var/run/netns/x')).toMatch(/ip netns list/);
    expect(hintFor('EWHATEVER', undefined, undefined, null)).toBeUndefined();
  });

  it('keeps code, errno and syscall and puts the caller on the stack', () => {
    const captured = new Error('here');
    const native = Object.assign(new Error('Operation not permitted'), { code: 'EPERM', errno: -1, syscall: 'recvmsg', operation: 'dump' });
    const e = fromNative(native, captured, '/var/run/netns/x') as ConntrackError;
    expect(e).toBeInstanceOf(ConntrackError);
    expect(e.code).toBe('EPERM');
    expect(e.errno).toBe(-1);
    expect(e.syscall).toBe('recvmsg');
    expect(e.operation).toBe('dump');
    expect(e.netns).toBe('/var/run/netns/x');
    expect(e.message).toMatch(/^dump: Operation not permitted \(ctnetlink needs CAP_NET_ADMIN/);
    expect(e.stack).toContain('17-errors.test.ts');
  });

  it('passes errors without a code through unchanged', () => {
    const plain = new TypeError('x');
    expect(fromNative(plain, new Error(), null)).toBe(plain);
  });
});

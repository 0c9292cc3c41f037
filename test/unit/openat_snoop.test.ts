/**
 * openat_snoop (seed 004): the lesson module's options, decoding of the
 * kernel's struct openat_event, and opensnoop-like / NDJSON rendering.
 */
import { describe, expect, it } from 'vitest';
import { lessonCommand } from '../../src/cli/lesson.js';
import {
  addSnoopOptions, commBytes, decodeEvent, describeFilter, eventJson, formatEvent, formatSummary, HEADER, NAME_LEN,
  OpenatEvent, parseCommOption, parsePidOption, parseRingSizeOption, type OpenatEventValue,
} from '../../src/lessons/openat_snoop.js';

function bytesOf(s: string, n: number): Uint8Array {
  const b = new Uint8Array(n);
  b.set(Buffer.from(s).subarray(0, n));
  return b;
}

function rawEvent(over: Partial<OpenatEventValue> & { commText?: string; nameText?: string } = {}): OpenatEventValue {
  const { commText = 'cat', nameText = '/etc/hostname', ...rest } = over;
  return {
    ...OpenatEvent.zero(), ts_ns: 5_000_123_456n, pid: 4242, tid: 4243, uid: 1000, ret: 3, flags: 0x80000,
    name_len: Buffer.byteLength(nameText) + 1, comm: bytesOf(commText, 16), name: bytesOf(nameText, NAME_LEN), ...rest,
  };
}

describe('openat_snoop: options, decoding, rendering', () => {
  it('decodes an event through the codec (bytes as the kernel lays them out)', () => {
    const ev = rawEvent();
    const buf = Buffer.alloc(OpenatEvent.size);
    OpenatEvent.encode(ev, buf);
    const back = OpenatEvent.decode(buf, 0);
    expect(OpenatEvent.size).toBe(304);
    expect(decodeEvent(back)).toEqual({
      tsNs: 5_000_123_456n, pid: 4242, tid: 4243, uid: 1000, comm: 'cat', path: '/etc/hostname', truncated: false, flags: 0x80000, ret: 3,
    });
  });

  it('renders opensnoop-like lines: fd, or -1 and the errno name; unreadable and cut names marked', () => {
    const t0 = 5_000_000_000n;
    expect(HEADER).toBe('TIME(s)       PID     COMM             FD  ERR     PATH');
    expect(formatEvent(decodeEvent(rawEvent()), t0)).toBe('0.000123      4242    cat              3   0       /etc/hostname');
    expect(formatEvent(decodeEvent(rawEvent({ ret: -2, nameText: '/nope' })), t0)).toBe('0.000123      4242    cat              -1  ENOENT  /nope');
    const unreadable = decodeEvent(rawEvent({ name_len: -14, nameText: '' }));
    expect(unreadable.path).toBeNull();
    expect(unreadable.nameError).toBe('EFAULT');
    expect(formatEvent(unreadable, t0)).toMatch(/<unreadable: EFAULT>$/);
    // A longer name: the kernel reads NAME_LEN - 1 bytes and the NUL, and says NAME_LEN.
    const cut = decodeEvent(rawEvent({ nameText: 'x'.repeat(NAME_LEN - 1), name_len: NAME_LEN }));
    expect(cut.truncated).toBe(true);
    expect(cut.path).toBe('x'.repeat(NAME_LEN - 1));
    expect(formatEvent(cut, t0).endsWith(`${'x'.repeat(NAME_LEN - 1)}...`)).toBe(true);
  });

  it('renders NDJSON: fd or error, path null with name_error, truncated', () => {
    expect(JSON.parse(eventJson(decodeEvent(rawEvent())))).toEqual({
      ts_ns: '5000123456', pid: 4242, tid: 4243, uid: 1000, comm: 'cat', path: '/etc/hostname', flags: 0x80000, fd: 3,
    });
    expect(JSON.parse(eventJson(decodeEvent(rawEvent({ ret: -13, name_len: -14, nameText: '' }))))).toEqual({
      ts_ns: '5000123456', pid: 4242, tid: 4243, uid: 1000, comm: 'cat', path: null, name_error: 'EFAULT', flags: 0x80000, error: 'EACCES',
    });
  });

  it('parses --pid, --comm, --ring-size; describes the filter; comm as 16 NUL-padded bytes', () => {
    expect(parsePidOption('42')).toBe(42);
    for (const bad of ['0', '-1', 'x', '4194305', '1.5']) expect(() => parsePidOption(bad)).toThrow(/not a process id/);
    expect(parseCommOption('cat')).toBe('cat');
    expect(() => parseCommOption('a'.repeat(16))).toThrow(/1 to 15 bytes/);
    expect(() => parseCommOption('')).toThrow(/1 to 15 bytes/);
    expect(parseRingSizeOption('5000')).toBe(8192);
    expect(parseRingSizeOption('1M')).toBe(1 << 20);
    expect(() => parseRingSizeOption('2G')).toThrow(/above/);
    expect(describeFilter({})).toBe('none');
    expect(describeFilter({ pid: 7, comm: 'cat' })).toBe('pid 7 and comm cat');
    expect([...commBytes('cat')]).toEqual([99, 97, 116, ...new Array(13).fill(0)]);
    expect([...commBytes(undefined)]).toEqual(new Array(16).fill(0));
    expect(formatSummary({ events: 12, unreadable: 1, lost: 0, untracked: 0, seconds: 5 }))
      .toBe('12 events, 1 unreadable names, 0 lost; 2.4 events/s over 5.0 s');
    expect(formatSummary({ events: 1, unreadable: 0, lost: 2, untracked: 3, seconds: 1 }))
      .toBe('1 events, 0 unreadable names, 2 lost, 3 untracked; 1.0 events/s over 1.0 s');
  });

  it('the loader takes no interface and answers bad usage with exit 2', () => {
    const cmd = lessonCommand({ lesson: 'openat_snoop', description: 'd', json: true, iface: false, options: addSnoopOptions, run: async () => {} });
    cmd.parse(['node', 'x', '--pid', '9', '--comm', 'cat', '--count', '3'], { from: 'node' });
    expect(cmd.opts()).toMatchObject({ pid: 9, comm: 'cat', count: 3, ringSize: 16 << 20 });
    expect(() => lessonCommand({ lesson: 'o', description: 'd', iface: false, options: addSnoopOptions, run: async () => {} })
      .parse(['node', 'x', '--pid', 'abc'], { from: 'node' })).toThrow();
  });
});

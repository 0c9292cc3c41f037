/**
 * IPv6 text without a kernel: parseIpv6 reads every RFC 4291 form, and
 * formatIpv6 writes RFC 5952's one canonical form (section 4: lowercase, no
 * leading zeros, "::" for the longest run of two or more zero groups, the
 * leftmost on a tie, never for a single group; section 5: IPv4-mapped
 * addresses end in a dotted quad). The ipv6 codec is the two together.
 */
import { describe, expect, it } from 'vitest';
import { formatIpv6, ipv6, parseIpv6 } from '../../src/codec.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
/** The 16 bytes of eight groups given as numbers. */
const groups = (...g: number[]) => Uint8Array.from(g.flatMap((x) => [x >> 8, x & 0xff]));

describe('formatIpv6 (RFC 5952)', () => {
  it('writes the canonical form of RFC 5952 section 4', () => {
    const cases: Array<[Uint8Array, string]> = [
      [groups(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), '2001:db8::1'], // 4.1: no leading zeros; 4.2.1: the run as short as possible
      [groups(0x2001, 0xdb8, 0, 1, 1, 1, 1, 1), '2001:db8:0:1:1:1:1:1'], // 4.2.2: one zero group is not compressed
      [groups(0x2001, 0, 0, 1, 0, 0, 0, 1), '2001:0:0:1::1'], // 4.2.3: the longest run
      [groups(0x2001, 0xdb8, 0, 0, 1, 0, 0, 1), '2001:db8::1:0:0:1'], // 4.2.3: the leftmost of equal runs
      [groups(0x2001, 0xdb8, 0xaaaa, 0xbbbb, 0xcccc, 0xdddd, 0xeeee, 0xaaaa), '2001:db8:aaaa:bbbb:cccc:dddd:eeee:aaaa'], // 4.3: lowercase
      [groups(0, 0, 0, 0, 0, 0, 0, 0), '::'],
      [groups(0, 0, 0, 0, 0, 0, 0, 1), '::1'],
      [groups(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0), '2001:db8:1::'],
      [groups(0xfe80, 0, 0, 0, 0x6899, 0x1aff, 0xfe5a, 0x9587), 'fe80::6899:1aff:fe5a:9587'],
      [groups(0xfd6c, 0x6274, 0x7300, 0x3ff8, 0, 0, 0, 2), 'fd6c:6274:7300:3ff8::2'],
      [groups(0xff02, 0, 0, 0, 0, 0, 0, 0x16), 'ff02::16'],
      [groups(1, 0, 1, 0, 1, 0, 1, 0), '1:0:1:0:1:0:1:0'], // no run of two: nothing compressed
    ];
    for (const [b, s] of cases) expect(formatIpv6(b), s).toBe(s);
  });

  it('writes IPv4-mapped addresses with a dotted quad (section 5), and only those', () => {
    expect(formatIpv6(groups(0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201))).toBe('::ffff:192.0.2.1');
    expect(formatIpv6(groups(0, 0, 0, 0, 0, 0xffff, 0, 0))).toBe('::ffff:0.0.0.0');
    expect(formatIpv6(groups(0, 0, 0, 0, 1, 0xffff, 0xc000, 0x0201))).toBe('::1:ffff:c000:201');
    expect(formatIpv6(groups(0, 0, 0, 0, 0, 0, 0xc000, 0x0201))).toBe('::c000:201'); // the deprecated "compatible" form is not special
  });

  it('refuses anything but 16 bytes', () => {
    expect(() => formatIpv6(new Uint8Array(4))).toThrow(TypeError);
    expect(() => formatIpv6(new Uint8Array(17))).toThrow(TypeError);
  });
});

describe('parseIpv6', () => {
  it('reads full, compressed, uppercase and mixed forms into network-order bytes', () => {
    expect(hex(parseIpv6('2001:0db8:0000:0000:0000:0000:0000:0001'))).toBe('20010db8000000000000000000000001');
    expect(hex(parseIpv6('2001:DB8::1'))).toBe('20010db8000000000000000000000001');
    expect(hex(parseIpv6('::'))).toBe('0'.repeat(32));
    expect(hex(parseIpv6('::1'))).toBe(`${'0'.repeat(31)}1`);
    expect(hex(parseIpv6('1::'))).toBe(`0001${'0'.repeat(28)}`);
    expect(hex(parseIpv6('1:2:3:4:5:6:7::'))).toBe('00010002000300040005000600070000');
    expect(hex(parseIpv6('::ffff:192.0.2.1'))).toBe('00000000000000000000ffffc0000201');
    expect(hex(parseIpv6('1:2:3:4:5:6:1.2.3.4'))).toBe('00010002000300040005000601020304');
  });

  it('round-trips with formatIpv6 to the canonical text', () => {
    for (const [text, canonical] of [
      ['2001:0db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], ['2001:db8:0:0:0::1', '2001:db8::1'], ['0:0:0:0:0:ffff:c000:0201', '::ffff:192.0.2.1'],
      ['FE80::1', 'fe80::1'], ['2001:db8::0:1', '2001:db8::1'],
    ]) expect(formatIpv6(parseIpv6(text)), text).toBe(canonical);
  });

  it('refuses malformed text', () => {
    for (const bad of ['', ':', ':::', '1:::2', '1::2::3', '12345::', 'g::', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', ':1::', '1::2:',
      '::ffff:1.2.3.256', '1.2.3.4', '1:2:3:4:5:6:7:1.2.3.4', '::1.2.3', ' ::1']) {
      expect(() => parseIpv6(bad), bad).toThrow(/bad IPv6 address/);
    }
  });

  it('the ipv6 codec writes the 16 bytes and reads them back as RFC 5952 text', () => {
    const b = Buffer.alloc(20);
    ipv6.encode('2001:DB8:0:0:1::1', b, 2);
    expect(hex(b)).toBe(`000020010db800000000000100000000000100${'00'}`);
    expect(ipv6.decode(b, 2)).toBe('2001:db8::1:0:0:1');
    expect(ipv6.size).toBe(16);
  });
});

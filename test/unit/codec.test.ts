import { describe, expect, it } from 'vitest';
import { struct, u8, u16, u32, u64, u64big, ipv4, bytes, parseIpv4, formatIpv4, parseProto, protoName } from '../../src/codec.js';

describe('codecs', () => {
  it('round-trips primitives in host order', () => {
    const b = Buffer.alloc(8);
    for (const [c, v] of [[u8, 255], [u16, 65535], [u32, 0xdeadbeef], [u64, 2 ** 53 - 1]] as const) {
      c.encode(v, b, 0);
      expect(c.decode(b, 0)).toBe(v);
    }
    u64big.encode(0xffffffffffffffffn, b, 0);
    expect(u64big.decode(b, 0)).toBe(0xffffffffffffffffn);
    u32.encode(1, b, 0);
    expect(b.readUInt32LE(0)).toBe(1);
  });
  it('rejects out-of-range values', () => {
    const b = Buffer.alloc(8);
    expect(() => u8.encode(256, b)).toThrow(RangeError);
    expect(() => u16.encode(-1, b)).toThrow(RangeError);
    expect(() => u64.encode(2 ** 53, b)).toThrow(RangeError);
    expect(() => u32.encode(1.5, b)).toThrow(RangeError);
  });
  it('writes IPv4 addresses in network order', () => {
    const b = Buffer.alloc(4);
    ipv4.encode('10.96.0.10', b);
    expect([...b]).toEqual([10, 96, 0, 10]);
    expect(ipv4.decode(b)).toBe('10.96.0.10');
    expect(() => parseIpv4('10.96.0.256')).toThrow(/bad IPv4/);
    expect(() => parseIpv4('10.96.0')).toThrow(/bad IPv4/);
    expect(formatIpv4(parseIpv4('192.168.1.2'))).toBe('192.168.1.2');
  });
  it('builds struct codecs with explicit padding and refuses implicit padding', () => {
    const K = struct('conn_key', { src_ip: 'ipv4', dst_ip: 'ipv4', proto: 'u8', pad: { pad: 3 } });
    expect(K.size).toBe(12);
    expect(K.layout.fields.map((f) => [f.name, f.offset, f.size])).toEqual([['src_ip', 0, 4], ['dst_ip', 4, 4], ['proto', 8, 1], ['pad', 9, 3]]);
    const b = Buffer.alloc(12, 0xff);
    K.encode({ src_ip: '1.2.3.4', dst_ip: '5.6.7.8', proto: 6 }, b);
    expect([...b]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 6, 0, 0, 0]);
    expect(K.decode(b)).toEqual({ src_ip: '1.2.3.4', dst_ip: '5.6.7.8', proto: 6 });
    expect(() => struct('bad', { proto: 'u8', n: 'u32' })).toThrow(/3 bytes of implicit padding after 'proto'/);
    expect(() => struct('bad2', { n: 'u64', proto: 'u8' })).toThrow(/7 bytes of implicit trailing padding/);
    const P = struct('ports', { sport: 'be16', dport: 'be16', b: { bytes: 4 } });
    const pb = Buffer.alloc(8);
    P.encode({ sport: 0x1234, dport: 80, b: new Uint8Array([1, 2, 3, 4]) }, pb);
    expect([...pb]).toEqual([0x12, 0x34, 0, 80, 1, 2, 3, 4]);
    expect(P.zero()).toEqual({ sport: 0, dport: 0, b: new Uint8Array(4) });
    expect(bytes(3).decode(Buffer.from([9, 8, 7]))).toEqual(new Uint8Array([9, 8, 7]));
  });
  it('parses and names protocols', () => {
    expect(parseProto('TCP')).toBe(6);
    expect(parseProto('17')).toBe(17);
    expect(() => parseProto('tcpp')).toThrow(/unknown protocol 'tcpp'/);
    expect(protoName(1)).toBe('icmp');
    expect(protoName(253)).toBe('253');
  });
});

/**
 * Packets for tests and benchmarks: Ethernet + IPv4 (with options) + TCP or
 * UDP frames built byte by byte with correct checksums, a parser, and full
 * (not incremental) checksum recomputation, written independently of any BPF
 * code so it can judge what a program did to a packet.
 */
import { formatIpv4, parseIpv4 } from '../../src/codec.js';

/** One's complement sum of 16-bit big-endian words of buf[off, off+len), added to `seed`, not folded. */
export function onesSum(buf: Uint8Array, off: number, len: number, seed = 0): number {
  let s = seed;
  let i = off;
  const end = off + len;
  for (; i + 1 < end; i += 2) s += (buf[i] << 8) | buf[i + 1];
  if (i < end) s += buf[i] << 8; // odd length: pad with a zero byte
  return s;
}

/** Folds a sum to 16 bits with end-around carry. */
export function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** The Internet checksum (RFC 1071) of buf[off, off+len). */
export function inetChecksum(buf: Uint8Array, off: number, len: number, seed = 0): number {
  return ~fold(onesSum(buf, off, len, seed)) & 0xffff;
}

/** What a frame is made of. Omitted fields get harmless defaults. */
export interface FrameSpec {
  srcMac?: string;
  dstMac?: string;
  /** EtherType (default 0x0800, IPv4). */
  etherType?: number;
  src: string;
  dst: string;
  /** IP protocol: 6 TCP, 17 UDP, anything else gets `payload` right after the IP header. */
  proto: number;
  sport?: number;
  dport?: number;
  payload?: Uint8Array;
  ttl?: number;
  tos?: number;
  id?: number;
  /** IP options (padded with zeros to a multiple of 4 bytes, at most 40). */
  options?: Uint8Array;
  /** Fragment: more-fragments flag and offset in 8-byte units. */
  mf?: boolean;
  fragOffset?: number;
  /** Don't-fragment flag (default set, as Linux sends TCP). */
  df?: boolean;
  /** UDP only: send a zero checksum ("no checksum"). */
  udpNoChecksum?: boolean;
  /** TCP: flags byte (default ACK|PSH), sequence and ack numbers. */
  tcpFlags?: number;
  seq?: number;
  ack?: number;
}

function macBytes(mac: string): number[] {
  return mac.split(':').map((h) => parseInt(h, 16));
}

/** Offsets inside a parsed frame. */
export interface FrameView {
  etherType: number;
  /** Offset of the IP header (14). */
  ipOff: number;
  ihl: number;
  totLen: number;
  proto: number;
  ttl: number;
  src: string;
  dst: string;
  /** Offset of the L4 header. */
  l4Off: number;
  l4Len: number;
  sport: number;
  dport: number;
  /** Offset of the L4 checksum field. */
  l4CheckOff: number;
  ipCheck: number;
  l4Check: number;
}

/**
 * Builds the frame: Ethernet, IPv4 with `options`, then TCP (20-byte header)
 * or UDP (8) and the payload, every checksum computed in full.
 */
export function buildFrame(s: FrameSpec): Buffer {
  const opts = s.options ?? new Uint8Array(0);
  const optLen = Math.ceil(opts.length / 4) * 4;
  if (optLen > 40) throw new Error('IP options are at most 40 bytes');
  const payload = s.payload ?? new Uint8Array(0);
  const ihl = 5 + optLen / 4;
  const l4h = s.proto === 6 ? 20 : s.proto === 17 ? 8 : 0;
  const totLen = ihl * 4 + l4h + payload.length;
  const f = Buffer.alloc(14 + totLen);
  f.set(macBytes(s.dstMac ?? '02:00:00:00:00:02'), 0);
  f.set(macBytes(s.srcMac ?? '02:00:00:00:00:01'), 6);
  f.writeUInt16BE(s.etherType ?? 0x0800, 12);
  const ip = 14;
  f[ip] = 0x40 | ihl;
  f[ip + 1] = s.tos ?? 0;
  f.writeUInt16BE(totLen, ip + 2);
  f.writeUInt16BE(s.id ?? 0x1234, ip + 4);
  const flags = ((s.df ?? true) ? 0x4000 : 0) | (s.mf ? 0x2000 : 0) | ((s.fragOffset ?? 0) & 0x1fff);
  f.writeUInt16BE(flags, ip + 6);
  f[ip + 8] = s.ttl ?? 64;
  f[ip + 9] = s.proto;
  f.writeUInt32BE(parseIpv4(s.src), ip + 12);
  f.writeUInt32BE(parseIpv4(s.dst), ip + 16);
  f.set(opts, ip + 20);
  f.writeUInt16BE(inetChecksum(f, ip, ihl * 4), ip + 10);
  const l4 = ip + ihl * 4;
  if (s.proto === 6) {
    f.writeUInt16BE(s.sport ?? 40000, l4);
    f.writeUInt16BE(s.dport ?? 80, l4 + 2);
    f.writeUInt32BE(s.seq ?? 1, l4 + 4);
    f.writeUInt32BE(s.ack ?? 1, l4 + 8);
    f[l4 + 12] = 5 << 4;
    f[l4 + 13] = s.tcpFlags ?? 0x18;
    f.writeUInt16BE(65535, l4 + 14);
  } else if (s.proto === 17) {
    f.writeUInt16BE(s.sport ?? 40000, l4);
    f.writeUInt16BE(s.dport ?? 53, l4 + 2);
    f.writeUInt16BE(8 + payload.length, l4 + 4);
  }
  f.set(payload, l4 + l4h);
  if (s.proto === 6 || s.proto === 17) {
    const check = s.proto === 17 && s.udpNoChecksum ? 0 : l4Checksum(f);
    f.writeUInt16BE(check, l4 + (s.proto === 6 ? 16 : 6));
  }
  return f;
}

/** Parses an Ethernet + IPv4 + TCP/UDP frame (as built by buildFrame). Throws on anything else. */
export function parseFrame(f: Uint8Array): FrameView {
  const b = Buffer.from(f.buffer, f.byteOffset, f.byteLength);
  const etherType = b.readUInt16BE(12);
  if (etherType !== 0x0800) throw new Error(`not IPv4 (ethertype 0x${etherType.toString(16)})`);
  const ipOff = 14;
  const ihl = b[ipOff] & 15;
  const totLen = b.readUInt16BE(ipOff + 2);
  const proto = b[ipOff + 9];
  const l4Off = ipOff + ihl * 4;
  if (proto !== 6 && proto !== 17) throw new Error(`not TCP/UDP (protocol ${proto})`);
  const l4CheckOff = l4Off + (proto === 6 ? 16 : 6);
  return {
    etherType, ipOff, ihl, totLen, proto, ttl: b[ipOff + 8],
    src: formatIpv4(b.readUInt32BE(ipOff + 12)), dst: formatIpv4(b.readUInt32BE(ipOff + 16)),
    l4Off, l4Len: totLen - ihl * 4,
    sport: b.readUInt16BE(l4Off), dport: b.readUInt16BE(l4Off + 2),
    l4CheckOff, ipCheck: b.readUInt16BE(ipOff + 10), l4Check: b.readUInt16BE(l4CheckOff),
  };
}

/** The IP header checksum recomputed from scratch (the checksum field taken as zero). */
export function ipChecksum(f: Uint8Array): number {
  const ihl = f[14] & 15;
  const h = Uint8Array.from(f.subarray(14, 14 + ihl * 4));
  h[10] = 0;
  h[11] = 0;
  return inetChecksum(h, 0, h.length);
}

/**
 * The TCP or UDP checksum recomputed from scratch: pseudo-header (source,
 * destination, protocol, L4 length) plus the L4 header and data, the
 * checksum field taken as zero. For UDP a computed 0 is given as 0xffff
 * (RFC 768). Uses the IP total length for the L4 length.
 */
export function l4Checksum(f: Uint8Array): number {
  const ihl = f[14] & 15;
  const totLen = (f[16] << 8) | f[17];
  const proto = f[23];
  const l4Off = 14 + ihl * 4;
  const l4Len = totLen - ihl * 4;
  const seg = Uint8Array.from(f.subarray(l4Off, l4Off + l4Len));
  const co = proto === 6 ? 16 : 6;
  seg[co] = 0;
  seg[co + 1] = 0;
  let s = onesSum(f, 26, 8); // source and destination addresses
  s += proto + l4Len;
  const c = inetChecksum(seg, 0, seg.length, s);
  return proto === 17 && c === 0 ? 0xffff : c;
}

/** A deterministic pseudo-random generator (mulberry32), so failures reproduce. */
export function rng(seed: number): { int(lo: number, hi: number): number; bytes(n: number): Uint8Array; pick<T>(a: readonly T[]): T; chance(p: number): boolean; ip(): string } {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
  return {
    int,
    bytes: (n) => Uint8Array.from({ length: n }, () => int(0, 255)),
    pick: (arr) => arr[int(0, arr.length - 1)],
    chance: (p) => next() < p,
    ip: () => `${int(1, 223)}.${int(0, 255)}.${int(0, 255)}.${int(1, 254)}`,
  };
}

/** IP options that parse as such: NOPs, then a record-route option, padded with End of Options. */
export function ipOptions(len: number, r: ReturnType<typeof rng>): Uint8Array {
  const o = new Uint8Array(len);
  if (len >= 8) {
    const rrLen = Math.min(39, len - 1) - ((Math.min(39, len - 1) - 3) % 4);
    o[0] = 1; // NOP
    o[1] = 7; // record route
    o[2] = rrLen;
    o[3] = 4; // pointer
    o.set(r.bytes(rrLen - 3), 4);
  } else {
    o.fill(1); // NOPs
  }
  return o;
}

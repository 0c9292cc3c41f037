/**
 * The perf ring parser over a synthetic ring in memory, laid out as the
 * kernel lays out a perf mmap (metadata page with data_head/data_tail, then
 * the data pages): samples in order, samples and headers wrapping past the
 * end, LOST records summed, reads limited by max resuming where they
 * stopped, a handler that throws, corrupt records refused, and the
 * perf_event_attr bytes.
 */
import { describe, expect, it } from 'vitest';
import { DATA_HEAD_OFFSET, DATA_TAIL_OFFSET, PERF_RECORD_LOST, PERF_RECORD_SAMPLE, PerfRingParser, perfRingMemory } from '../../src/perfbuf/ring.js';
import { encodePerfEventAttr, parseCpuList, PERF_ATTR_SIZE, PERF_SAMPLE_RAW, PerfSwConfig, PerfType } from '../../src/ffi/perf.js';
import { BpfError } from '../../src/errors.js';

const PAGE = 4096;

/** A ring of `size` data bytes and a kernel-side writer for it. */
function syntheticRing(size: number) {
  const buf = new ArrayBuffer(PAGE + size);
  const mem = perfRingMemory(buf, PAGE, size);
  const meta = new DataView(buf);
  const bytes = new Uint8Array(buf, PAGE, size);
  let head = 0n;
  const tail = () => meta.getBigUint64(DATA_TAIL_OFFSET, true);
  const put = (rec: Buffer) => {
    if (Number(head - tail()) + rec.length > size) throw new Error('synthetic ring full');
    for (let i = 0; i < rec.length; i++) bytes[(Number(head) + i) % size] = rec[i];
    head += BigInt(rec.length);
  };
  return {
    mem,
    /** Writes a record without publishing data_head. */
    put,
    publish: () => meta.setBigUint64(DATA_HEAD_OFFSET, head, true),
    /** Writes and publishes a sample of raw `data` (padded as the kernel pads it). */
    sample(data: Buffer) {
      const size8 = Math.ceil((data.length + 4) / 8) * 8;
      const raw = size8 - 4;
      const rec = Buffer.alloc(8 + size8);
      rec.writeUInt32LE(PERF_RECORD_SAMPLE, 0);
      rec.writeUInt16LE(rec.length, 6);
      rec.writeUInt32LE(raw, 8);
      data.copy(rec, 12);
      put(rec);
      this.publish();
    },
    lost(n: number) {
      const rec = Buffer.alloc(24);
      rec.writeUInt32LE(PERF_RECORD_LOST, 0);
      rec.writeUInt16LE(24, 6);
      rec.writeBigUInt64LE(7n, 8);
      rec.writeBigUInt64LE(BigInt(n), 16);
      put(rec);
      this.publish();
    },
    tail,
    head: () => head,
  };
}

/** A 20-byte payload: u64 seq, u32 seq*3, u64 ~seq (raw size 20 -> record 32 bytes). */
function payload(seq: number): Buffer {
  const b = Buffer.alloc(20);
  b.writeBigUInt64LE(BigInt(seq), 0);
  b.writeUInt32LE((seq * 3) >>> 0, 8);
  b.writeBigUInt64LE(BigInt(seq) ^ 0xffffffffffffffffn, 12);
  return b;
}

describe('perf ring parser', () => {
  it('hands out samples in order, each once, across many wrap-arounds, straddling samples whole', () => {
    const r = syntheticRing(256);
    const p = new PerfRingParser(r.mem);
    let next = 0;
    let seq = 0;
    let straddled = 0;
    for (let round = 0; round < 200; round++) {
      // Sizes vary (20 and 44 bytes) so records land at every 8-byte offset against the end.
      const k = 1 + (round % 5);
      for (let i = 0; i < k; i++) {
        const pos = Number(r.head()) % 256;
        const d = seq % 3 === 0 ? Buffer.concat([payload(seq), Buffer.alloc(24, 0xab)]) : payload(seq);
        if (pos + 8 + Math.ceil((d.length + 4) / 8) * 8 > 256) straddled++;
        r.sample(d);
        seq++;
      }
      const n = p.read((data, off, len, v) => {
        expect(off).toBe(0);
        expect(data.readBigUInt64LE(off)).toBe(BigInt(next));
        expect(v.u64[0]).toBe(BigInt(next)); // 8-byte aligned views work
        expect(v.u32[2]).toBe((next * 3) >>> 0);
        expect(data.readBigUInt64LE(off + 12)).toBe(BigInt(next) ^ 0xffffffffffffffffn);
        expect(len).toBe(next % 3 === 0 ? 44 : 20);
        if (next % 3 === 0) expect(data.subarray(20, 44).every((x) => x === 0xab)).toBe(true);
        next++;
      }, Infinity);
      expect(n).toBe(k);
      expect(r.tail()).toBe(r.head());
    }
    expect(next).toBe(seq);
    expect(straddled).toBeGreaterThan(20);
    expect(p.samples).toBe(seq);
    expect(p.pending()).toBe(0);
  });

  it('sums LOST records into lost and hands out the samples around them', () => {
    const r = syntheticRing(512);
    const p = new PerfRingParser(r.mem);
    r.sample(payload(0));
    r.lost(5);
    r.sample(payload(1));
    r.lost(2 ** 33); // the u64 count's high word
    const seen: number[] = [];
    expect(p.read((d) => seen.push(Number(d.readBigUInt64LE(0))), Infinity)).toBe(2);
    expect(seen).toEqual([0, 1]);
    expect(p.lost).toBe(5 + 2 ** 33);
    expect(p.other).toBe(0);
  });

  it('stops at max and resumes there; reads nothing past data_head', () => {
    const r = syntheticRing(1024);
    const p = new PerfRingParser(r.mem);
    for (let i = 0; i < 10; i++) r.sample(payload(i));
    // Written but not published: the parser must not see it.
    const rec = Buffer.alloc(32);
    rec.writeUInt32LE(PERF_RECORD_SAMPLE, 0);
    rec.writeUInt16LE(32, 6);
    rec.writeUInt32LE(20, 8);
    r.put(rec);
    const seen: number[] = [];
    const take = (d: Buffer) => { seen.push(Number(d.readBigUInt64LE(0))); };
    expect(p.read(take, 4)).toBe(4);
    expect(p.pending()).toBe(6 * 32);
    expect(p.read(take, 4)).toBe(4);
    expect(p.read(take, Infinity)).toBe(2);
    expect(p.read(take, Infinity)).toBe(0);
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(p.pending()).toBe(0);
  });

  it('skips other record types; a throwing handler consumes its sample and the ones before', () => {
    const r = syntheticRing(512);
    const p = new PerfRingParser(r.mem);
    const other = Buffer.alloc(16);
    other.writeUInt32LE(3 /* PERF_RECORD_COMM */, 0);
    other.writeUInt16LE(16, 6);
    r.put(other);
    for (let i = 0; i < 3; i++) r.sample(payload(i));
    expect(() => p.read((d) => { if (d.readBigUInt64LE(0) === 1n) throw new Error('boom'); }, Infinity)).toThrow('boom');
    expect(p.other).toBe(1);
    const rest: number[] = [];
    p.read((d) => rest.push(Number(d.readBigUInt64LE(0))), Infinity);
    expect(rest).toEqual([2]);
  });

  it('refuses a corrupt record without moving past it', () => {
    const r = syntheticRing(512);
    const p = new PerfRingParser(r.mem);
    r.sample(payload(0));
    const bad = Buffer.alloc(8);
    bad.writeUInt32LE(PERF_RECORD_SAMPLE, 0);
    bad.writeUInt16LE(4, 6); // smaller than its header
    r.put(bad);
    r.publish();
    const seen: number[] = [];
    expect(() => p.read((d) => seen.push(Number(d.readBigUInt64LE(0))), Infinity)).toThrow(BpfError);
    expect(() => p.read(() => {}, Infinity)).toThrow(/read perf buffer: corrupt record at offset 32: size 4, 8 bytes left \(EIO\)/);
    expect(seen).toEqual([0]);
    expect(r.tail()).toBe(32n);
  });

  it('refuses a data area that is not a power of two', () => {
    expect(() => new PerfRingParser(perfRingMemory(new ArrayBuffer(PAGE + 3000), PAGE, 3000))).toThrow(RangeError);
  });
});

describe('perf_event_open attributes', () => {
  it('encodes a BPF output event as the kernel reads struct perf_event_attr', () => {
    const b = encodePerfEventAttr({ type: PerfType.SOFTWARE, config: PerfSwConfig.BPF_OUTPUT, sample: 1, sampleType: PERF_SAMPLE_RAW, disabled: true, wakeup: 4096, watermark: true });
    expect(b.length).toBe(PERF_ATTR_SIZE);
    expect(b.readUInt32LE(0)).toBe(1);
    expect(b.readUInt32LE(4)).toBe(112);
    expect(b.readBigUInt64LE(8)).toBe(10n);
    expect(b.readBigUInt64LE(16)).toBe(1n);
    expect(b.readBigUInt64LE(24)).toBe(1024n);
    expect(b.readBigUInt64LE(40)).toBe((1n << 0n) | (1n << 14n));
    expect(b.readUInt32LE(48)).toBe(4096);
    const f = encodePerfEventAttr({ type: PerfType.SOFTWARE, config: PerfSwConfig.CPU_CLOCK, sample: 49, freq: true });
    expect(f.readBigUInt64LE(40)).toBe(1n << 10n);
    expect(f.readBigUInt64LE(16)).toBe(49n);
  });

  it('parses kernel CPU lists', () => {
    expect(parseCpuList('0-3,6,8-9\n')).toEqual([0, 1, 2, 3, 6, 8, 9]);
    expect(parseCpuList('0\n')).toEqual([0]);
    expect(() => parseCpuList('0-a')).toThrow(RangeError);
  });
});

/**
 * The ring buffer reader on real rings, filled by a real BPF producer
 * (bpf/bench/ringbuf_bench.bpf.c) driven by BPF_PROG_TEST_RUN: every run
 * reserves one record carrying a sequence number, submits it or discards
 * every k-th, and counts what it could not reserve. Checked: order, no
 * duplicates, discarded records skipped, wrap-around through the double
 * mapping (records that straddle the end read whole), losses equal to the
 * producer's failed reserves, waking from the event loop (consume, records,
 * batches), a producer on another CPU, close() semantics and errors.
 */
import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { BpfError, BpfObject, RingBufReader, struct, u32 } from '../src/index.js';
import { ensureObject } from '../src/cli/build.js';
import { ringViews } from '../src/ringbuf/raw.js';
import { viewDecoder } from '../src/ringbuf/decode.js';
import { buildC } from '../bench/lib.js';
import { kernelTests } from './helpers/kernel.js';

const BenchRecord = struct('bench_record', { seq: 'u64', value: 'u32', size: 'u32' });
const BenchCounters = struct('bench_counters', { next_seq: 'u64', submitted: 'u64', discarded: 'u64', failed: 'u64' });
const TAIL_MAGIC = 0x5a5aa5a5deadbeefn;
const FRAME = new Uint8Array(64);

interface Producer {
  obj: BpfObject;
  /** Runs the producer `n` times (one test run with repeat n). */
  produce(n: number): void;
  counters(): ReturnType<typeof BenchCounters.zero>;
  reader<T = Buffer>(opts?: ConstructorParameters<typeof RingBufReader<T>>[1]): RingBufReader<T>;
}

const opened: BpfObject[] = [];

/** Loads the producer with a ring of `ringBytes` and its constants. */
function producer(ringBytes: number, consts: { discard_every?: number; big_every?: number } = {}): Producer {
  const obj = BpfObject.open(ensureObject('bench', 'ringbuf_bench'));
  opened.push(obj);
  obj.setMaxEntries('rb', ringBytes);
  obj.setConst('discard_every', consts.discard_every ?? 0);
  obj.setConst('big_every', consts.big_every ?? 0);
  obj.load();
  const prog = obj.program('produce');
  const counters = obj.map('counters', u32, BenchCounters);
  return {
    obj,
    produce: (n) => { prog.testRun({ data: FRAME, repeat: n }); },
    counters: () => counters.get(0)!,
    reader: (opts) => RingBufReader.open(obj, 'rb', { lost: () => counters.get(0)!.failed, ...opts }),
  };
}

describe('decoding records through typed views', () => {
  const Every = struct('every', {
    a: 'u8', pad_a: { pad: 1 }, b: 'u16', c: 'be16', d: { bytes: 2 }, e: 'u32', f: 'i32', g: 'be32', h: 'ipv4',
    i: 'u64', j: 'u64big', k: 'i64big', l: { bytes: 3 }, pad_l: { pad: 5 },
  });

  it('builds exactly the objects the codec decodes, for every field type', () => {
    const decode = viewDecoder(Every, 'test')!;
    expect(decode).toBeTypeOf('function');
    const data = randomBytes(64 * 1024);
    const views = ringViews(data);
    for (let off = 0; off + Every.size <= data.length; off += 8) {
      // u64 as a number is exact up to 2^53: keep the top bits of i small, as the codec requires.
      data[off + 31] = 0;
      data[off + 30] &= 0x1f;
      expect(decode(data, off, Every.size, views)).toEqual(Every.decode(data, off));
    }
    expect(Object.keys(decode(data, 0, Every.size, views))).toEqual(Object.keys(Every.decode(data, 0)));
  });

  it('refuses short records, and leaves codecs without a struct declaration to their own decode', () => {
    const data = Buffer.alloc(128);
    expect(() => viewDecoder(Every, 'rb')!(data, 0, Every.size - 1, ringViews(data))).toThrow(/ring buffer rb: record of 55 bytes is shorter than its codec \(56\)/);
    expect(viewDecoder(u32, 'rb')).toBeUndefined();
  });
});

describe.skipIf(!kernelTests())('ring buffer reader on real rings', () => {
  afterAll(() => { for (const o of opened) o.close(); });

  it('refuses a map that is not a ring buffer', () => {
    const p = producer(4096);
    expect(() => new RingBufReader(p.obj.mapFd('counters'))).toThrow(BpfError);
    expect(() => new RingBufReader(p.obj.mapFd('counters'))).toThrow(/map ring buffer counters: its type is array, not ringbuf \(EINVAL\)/);
  });

  it('reads every record in order, once, across many wrap-arounds, straddling records whole', () => {
    const p = producer(4096, { big_every: 5 }); // 5 records take 208 bytes: positions drift against the 4 KiB end
    using rb = p.reader();
    expect(rb.size).toBe(4096);
    let next = 0;
    let straddling = 0;
    let big = 0;
    for (let round = 0; round < 100; round++) { // ~60 laps of the ring
      p.produce(60); // 2496 bytes: fits in the 4 KiB ring
      const n = rb.readRaw((data, off, len, v) => {
        const seq = Number(data.readBigUInt64LE(off));
        expect(seq).toBe(next++);
        expect(v.u32[(off >> 2) + 2]).toBe((seq * 3) >>> 0);
        const size = seq % 5 === 0 ? 104 : 16;
        expect(len).toBe(size);
        expect(v.u32[(off >> 2) + 3]).toBe(size);
        if (size === 104) {
          big++;
          expect(data.readBigUInt64LE(off + 96)).toBe(BigInt(seq) ^ TAIL_MAGIC);
        }
        if (off < rb.size && off + len > rb.size) straddling++;
      });
      expect(n).toBe(60);
    }
    expect(next).toBe(6000);
    expect(big).toBe(6000 / 5);
    expect(straddling).toBeGreaterThan(10);
    expect(rb.stats()).toEqual({ consumed: 6000, discarded: 0, lost: 0, pending: 0 });
    expect(p.counters()).toMatchObject({ next_seq: 6000, submitted: 6000, discarded: 0, failed: 0 });
  });

  it('skips discarded records; a burst larger than the ring loses exactly the failed reserves', () => {
    const p = producer(16384, { discard_every: 5 });
    using rb = p.reader({ codec: BenchRecord });
    const N = 2000; // 48 KB of 24-byte records into 16 KiB
    p.produce(N);
    const c = p.counters();
    expect(c.failed).toBeGreaterThan(0);
    expect(c.submitted + c.discarded + c.failed).toBe(N);
    const seqs: number[] = [];
    rb.read((r) => { seqs.push(r.seq); expect(r.value).toBe((r.seq * 3) >>> 0); });
    // One size of record: once the ring is full every later reserve fails,
    // so what arrives is exactly [0, N - failed) without the discarded ones.
    const expected: number[] = [];
    for (let s = 0; s < N - c.failed; s++) if (s % 5 !== 0) expected.push(s);
    expect(seqs).toEqual(expected);
    expect(rb.consumed).toBe(c.submitted);
    expect(rb.discarded).toBe(c.discarded);
    expect(rb.discarded).toBe(Math.ceil((N - c.failed) / 5));
    expect(rb.lost).toBe(c.failed);
    // The ring has room again: the next records arrive.
    p.produce(10);
    const more: number[] = [];
    rb.read((r) => more.push(r.seq));
    expect(more).toEqual([N, N + 1, N + 2, N + 3, N + 4, N + 6, N + 7, N + 8, N + 9].filter((s) => s % 5 !== 0));
  });

  it('hands out at most max records per read, and the rest on the next', () => {
    const p = producer(4096);
    using rb = p.reader({ codec: BenchRecord });
    p.produce(50);
    const got: number[] = [];
    expect(rb.read((r) => got.push(r.seq), 20)).toBe(20);
    expect(rb.read((r) => got.push(r.seq), 0)).toBe(0);
    expect(rb.pending()).toBe(30 * 24);
    expect(rb.read((r) => got.push(r.seq))).toBe(30);
    expect(got).toEqual([...Array(50).keys()]);
    expect(rb.pending()).toBe(0);
  });

  it('refuses records shorter than the codec', () => {
    const p = producer(4096);
    using rb = p.reader({ codec: struct('too_big', { a: 'u64', b: 'u64', c: 'u64' }) });
    p.produce(1);
    expect(() => rb.read(() => {})).toThrow(/ring buffer rb: record of 16 bytes is shorter than its codec \(24\)/);
  });

  it('a handler that throws stops the read; its record is consumed, the next read goes on after it', () => {
    const p = producer(4096);
    using rb = p.reader({ codec: BenchRecord });
    p.produce(10);
    const got: number[] = [];
    expect(() => rb.read((r) => { got.push(r.seq); if (r.seq === 3) throw new Error('boom'); })).toThrow('boom');
    expect(rb.read((r) => got.push(r.seq))).toBe(6);
    expect(got).toEqual([...Array(10).keys()]);
  });

  it('close() from a handler stops the read, is idempotent, and later use throws EBADF', () => {
    const p = producer(4096);
    const rb = p.reader({ codec: BenchRecord });
    p.produce(10);
    const got: number[] = [];
    expect(rb.read((r) => { got.push(r.seq); if (r.seq === 4) rb.close(); })).toBe(5);
    expect(got).toEqual([0, 1, 2, 3, 4]);
    expect(rb.closed).toBe(true);
    rb.close();
    expect(() => rb.read(() => {})).toThrow(/reader is closed \(EBADF\)/);
    expect(() => rb.views).toThrow(/EBADF/);
    expect(rb.pending()).toBe(0);
    // A new reader starts where the closed one stopped.
    using again = p.reader({ codec: BenchRecord });
    const rest: number[] = [];
    again.read((r) => rest.push(r.seq));
    expect(rest).toEqual([5, 6, 7, 8, 9]);
  });

  it('refuses a read from inside a handler (EBUSY)', () => {
    const p = producer(4096);
    using rb = p.reader();
    p.produce(2);
    expect(() => rb.readRaw(() => { rb.readRaw(() => {}); })).toThrow(/already reading.*\(EBUSY\)/);
  });

  it('consume() is woken by the kernel and resolves at close(); one consumer at a time', async () => {
    const p = producer(65536);
    using rb = p.reader({ codec: BenchRecord });
    const got: number[] = [];
    const timer = setInterval(() => p.produce(100), 5);
    try {
      const done = rb.consume((r) => { got.push(r.seq); if (got.length === 1000) rb.close(); });
      expect(() => rb.consume(() => {})).toThrow(/already consumed by consume\(\) \(EBUSY\)/);
      await done;
    } finally {
      clearInterval(timer);
    }
    expect(got).toEqual([...Array(1000).keys()]);
    expect(rb.closed).toBe(true);
  });

  it('consume() stops when its signal aborts, rejects with what the handler throws; the reader stays usable', async () => {
    const p = producer(65536);
    using rb = p.reader({ codec: BenchRecord });
    const ac = new AbortController();
    const got: number[] = [];
    const done = rb.consume((r) => { got.push(r.seq); if (got.length === 5) ac.abort(); }, { signal: ac.signal });
    setTimeout(() => p.produce(8), 10);
    await done;
    expect(got).toEqual([0, 1, 2, 3, 4]); // nothing after the abort, even from the same batch
    expect(rb.closed).toBe(false);
    const failing = rb.consume(() => { throw new Error('handler failed'); });
    await expect(failing).rejects.toThrow('handler failed');
    // The record the handler threw on (5) is consumed; the rest are still there, in order.
    const rest: number[] = [];
    rb.read((r) => rest.push(r.seq));
    expect(rest).toEqual([6, 7]);
    expect(rb.consumed).toBe(8);
  });

  it('consume() with intervalMs drains from a timer, without fd wake-ups', async () => {
    const p = producer(65536);
    using rb = p.reader({ codec: BenchRecord });
    expect(() => rb.consume(() => {}, { intervalMs: 0 })).toThrow(RangeError);
    const got: number[] = [];
    const times: number[] = [];
    const timer = setInterval(() => p.produce(20), 5);
    try {
      await rb.consume((r) => {
        got.push(r.seq);
        times.push(performance.now());
        if (got.length >= 300) rb.close();
      }, { intervalMs: 40 });
    } finally {
      clearInterval(timer);
    }
    expect(got).toEqual([...Array(300).keys()]);
    // Records come in drains at least 40 ms apart (timers never fire early),
    // not right after each test run as fd wake-ups would bring them.
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    expect(gaps.filter((g) => g > 5 && g < 35)).toEqual([]);
    expect(gaps.filter((g) => g >= 35).length).toBeGreaterThanOrEqual(1);
  });

  it('records() yields each record when the kernel commits it, loses nothing on break, ends at close()', async () => {
    const p = producer(65536);
    using rb = p.reader({ codec: BenchRecord });
    const timer = setInterval(() => p.produce(10), 5);
    try {
      const first: number[] = [];
      for await (const r of rb) { first.push(r.seq); if (first.length === 25) break; }
      const second: number[] = [];
      setTimeout(() => rb.close(), 100);
      for await (const r of rb.records()) second.push(r.seq);
      expect(first).toEqual([...Array(25).keys()]);
      expect(second.length).toBeGreaterThan(0);
      expect(second).toEqual([...Array(second.length).keys()].map((i) => i + 25));
    } finally {
      clearInterval(timer);
    }
  });

  it('batches() yields what arrived together and ends when the signal aborts', async () => {
    const p = producer(65536);
    using rb = p.reader({ codec: BenchRecord });
    const ac = new AbortController();
    setTimeout(() => p.produce(300), 10);
    setTimeout(() => ac.abort(), 300);
    const all: number[] = [];
    let batches = 0;
    for await (const b of rb.batches({ signal: ac.signal })) { batches++; all.push(...b.map((r) => r.seq)); }
    expect(all).toEqual([...Array(300).keys()]);
    expect(batches).toBeGreaterThanOrEqual(1);
    expect(rb.closed).toBe(false);
  });

  it('keeps order with a producer running on another CPU at the same time; losses equal failed reserves', async () => {
    const p = producer(1 << 20);
    using rb = p.reader();
    const bin = buildC('ringbuf');
    const progFd = p.obj.program('produce').fd;
    let next = 0;
    let bad = 0;
    const child = spawn(bin, ['produce', '0.5', '100000', Buffer.from(FRAME).toString('hex')], { stdio: ['ignore', 'pipe', 'pipe', progFd] });
    let out = '';
    child.stdout!.on('data', (d) => { out += String(d); });
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const consuming = rb.consumeRaw((data, off) => {
      const seq = Number(data.readBigUInt64LE(off));
      if (seq < next) bad++;
      next = seq + 1;
    });
    expect(await exited).toBe(0);
    const runs = (JSON.parse(out) as { runs: number }).runs;
    // Let consume() drain what is left, then stop.
    for (let i = 0; i < 100 && rb.pending() > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(rb.pending()).toBe(0);
    rb.close();
    await consuming;
    const c = p.counters();
    expect(c.next_seq).toBe(runs);
    expect(bad).toBe(0);
    expect(rb.consumed).toBe(c.submitted);
    expect(rb.lost).toBe(c.failed);
    expect(c.submitted + c.failed).toBe(runs);
    expect(runs).toBeGreaterThanOrEqual(100_000);
  });
});

/**
 * Ring buffer consumption: the TS reader against libbpf's
 * ring_buffer__consume() in C (bench/c/ringbuf.c), on the same burst of
 * records produced by the same BPF program (bpf/bench/ringbuf_bench.bpf.c,
 * one BPF_PROG_TEST_RUN with repeat = N), timing only the consumption; the
 * TS reader decoding every record into an object; and a sustained run: the
 * mytcpdump program driven flat out for a second by a producer process on
 * the other CPU while the TS reader consumes from the event loop.
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { BpfObject, struct, u32 } from '../src/index.js';
import { ensureObject } from '../src/cli/build.js';
import { RingMapping } from '../src/ringbuf/ring.js';
import { RawRingReader, PLAIN_LOADS_ACQUIRE } from '../src/ringbuf/raw.js';
import { RingBufReader, type RingViews } from '../src/ringbuf/reader.js';
import { DEFAULT_RING_BYTES, EVENTS_MAP, formatBytes, openCapture } from '../src/lessons/mytcpdump.js';
import { buildC, runC, type BenchModule, type BenchRow } from './lib.js';

const BenchRecord = struct('bench_record', { seq: 'u64', value: 'u32', size: 'u32' });
const FRAME = new Uint8Array(64);

/** The ring the C side sizes for `records` records (keep in step with bench/c/ringbuf.c). */
function ringFor(records: number): number {
  let size = 4096;
  while (size < records * 24 + 4096) size *= 2;
  return size;
}

/** Sum of the `value` field (seq * 3, as u32) over seqs [from, from + n). */
function expectedSum(from: number, n: number): number {
  let s = 0;
  for (let i = from; i < from + n; i++) s += (i * 3) >>> 0;
  return s;
}

/** An Ethernet + IPv4 + UDP frame, 60 bytes, for mytcpdump. */
function udpFrame(): Buffer {
  const f = Buffer.alloc(60);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(46, 16);
  f[22] = 64;
  f[23] = 17;
  f.writeUInt32BE(0x0ac90002, 26);
  f.writeUInt32BE(0x0ac90001, 30);
  f.writeUInt16BE(40000, 34);
  f.writeUInt16BE(9000, 36);
  f.writeUInt16BE(26, 38);
  return f;
}

interface Burst { rate: number; sum: number }

/** Produces a burst of `n` records, then times `consume` (which returns how many it read). */
function timedBurst(obj: BpfObject, n: number, consume: () => { count: number; sum: number }): Burst {
  obj.program('produce').testRun({ data: FRAME, repeat: n });
  const t0 = performance.now();
  const { count, sum } = consume();
  const ms = performance.now() - t0;
  if (count !== n) throw new Error(`consumed ${count} of ${n} records`);
  return { rate: (n / ms) * 1000, sum };
}

async function burstFigures(quick: boolean): Promise<BenchRow[]> {
  const N = quick ? 200_000 : 1_000_000;
  const rounds = quick ? 3 : 10;
  const bin = buildC('ringbuf');
  const path = ensureObject('bench', 'ringbuf_bench');
  const obj = BpfObject.open(path);
  try {
    obj.setMaxEntries('rb', ringFor(N));
    obj.load();
    const counters = obj.map('counters', u32, struct('bench_counters', { next_seq: 'u64', submitted: 'u64', discarded: 'u64', failed: 'u64' }));
    const fd = obj.mapFd('rb');
    // Three readers of the one ring, each with its own compiled loop (as an application has one per ring).
    const raw = new RawRingReader(RingMapping.open(fd, 'rb'));
    const atomic = new RawRingReader(RingMapping.open(fd, 'rb'), { atomicHeaders: true });
    const decoding = new RingBufReader(fd, { name: 'rb', codec: BenchRecord });
    const codecDecoding = new RingBufReader(fd, { name: 'rb', codec: BenchRecord, viewDecode: false });
    const acc = { count: 0, sum: 0 };
    const sumRaw = (r: RawRingReader) => () => {
      acc.count = 0;
      acc.sum = 0;
      r.read((_d, off, _len, v) => { acc.count++; acc.sum += v.u32[(off >> 2) + 2]; });
      return acc;
    };
    const sumDecoded = (rb: RingBufReader<ReturnType<typeof BenchRecord.zero>>) => () => {
      acc.count = 0;
      acc.sum = 0;
      rb.read((rec) => { acc.count++; acc.sum += rec.value; });
      return acc;
    };
    const best = { c: 0, ts: 0, atomic: 0, decode: 0, codecDecode: 0 };
    try {
      // Alternate C and TS rounds so both see the same machine; keep each side's best.
      for (let i = 0; i < 2; i++) {
        const c = runC<{ records: number; rate: number }>(bin, ['consume', path, String(N), String(rounds)]);
        best.c = Math.max(best.c, c.rate);
        for (let r = 0; r < rounds; r++) {
          const from = counters.get(0)!.next_seq;
          const b = timedBurst(obj, N, sumRaw(raw));
          if (b.sum !== expectedSum(from, N)) throw new Error(`TS reader summed ${b.sum}, expected ${expectedSum(from, N)}`);
          best.ts = Math.max(best.ts, b.rate);
          best.atomic = Math.max(best.atomic, timedBurst(obj, N, sumRaw(atomic)).rate);
        }
      }
      // Decoding last: its garbage (an object per record) would otherwise be collected during the other rounds.
      for (let r = 0; r < rounds; r++) {
        best.decode = Math.max(best.decode, timedBurst(obj, N, sumDecoded(decoding)).rate);
        best.codecDecode = Math.max(best.codecDecode, timedBurst(obj, N, sumDecoded(codecDecoding)).rate);
      }
    } finally {
      raw.close();
      atomic.close();
      decoding.close();
      codecDecoding.close();
    }
    const burst = (k: number) => `a burst of ${N / 1e6}M 16-byte records (one test run, repeat ${N}) in a ${formatBytes(ringFor(N))} ring, best of ${k} rounds`;
    const ratio = best.ts / best.c;
    return [
      {
        group: 'ringbuf', figure: 'consume burst: count + sum a u32 field', unit: 'records/s', ts: best.ts, c: best.c, ratio,
        goal: 'TS/C >= 0.5', pass: ratio >= 0.5,
        note: `${burst(2 * rounds)} each side. TS: RingBufReader.readRaw with a typed-array view; C: libbpf ring_buffer__consume with a callback. ` +
          `Header loads are plain loads on ${PLAIN_LOADS_ACQUIRE ? 'this x86-64 (acquire in hardware)' : 'none: this CPU needs Atomics.load'}; ` +
          `the same reader with Atomics.load per header (what other CPUs get) does ${(best.atomic / 1e6).toFixed(1)}M records/s (TS/C ${(best.atomic / best.c).toFixed(2)}).`,
      },
      {
        group: 'ringbuf', figure: 'consume burst, decoding each record to an object', unit: 'records/s', ts: best.decode,
        goal: '>= 10M records/s', pass: best.decode >= 10e6,
        note: `${burst(rounds)}. RingBufReader.read with the struct codec of {u64 seq, u32 value, u32 size}: one object per record, ` +
          `built through typed-array views of the ring (src/ringbuf/decode.ts); through the codec's own decode (Buffer methods) ` +
          `it does ${(best.codecDecode / 1e6).toFixed(1)}M records/s.`,
      },
    ];
  } finally {
    obj.close();
  }
}

/**
 * How the reader runs in a sustained figure: woken by the fd and reading
 * raw, woken and decoding (as the loader does), or draining raw on a 20 ms
 * timer, which shows what the kernel's wake-ups cost the producer.
 */
type SustainedMode = 'raw' | 'decode' | 'timer';

async function sustainedFigure(quick: boolean, mode: SustainedMode): Promise<BenchRow> {
  const decode = mode === 'decode';
  const seconds = quick ? 0.3 : 1;
  const repeat = quick ? 1_000_000 : 2_000_000;
  const bin = buildC('ringbuf');
  const obj = BpfObject.open(ensureObject('mytcpdump'));
  try {
    obj.setMaxEntries(EVENTS_MAP, DEFAULT_RING_BYTES);
    obj.load();
    const capture = openCapture(obj);
    const rb = capture.reader;
    let peak = 0;
    const sample = setInterval(() => { peak = Math.max(peak, rb.pending()); }, 5);
    let events = 0;
    let sum = 0;
    const raw = (_d: Buffer, off: number, _len: number, v: RingViews) => { events++; sum += v.u16[(off >> 1) + 6]; };
    const consuming = decode ? rb.consume((ev) => { events++; sum += ev.pkt_len; })
      : rb.consumeRaw(raw, mode === 'timer' ? { intervalMs: 20 } : {});
    // The producer: a process test-running the program flat out, pinned to the last CPU when taskset exists.
    const args = ['produce', String(seconds), String(repeat), udpFrame().toString('hex')];
    const cpu = Math.max(0, (await import('node:os')).cpus().length - 1);
    const haveTaskset = (await import('node:fs')).existsSync('/usr/bin/taskset');
    const cmd = haveTaskset ? ['/usr/bin/taskset', '-c', String(cpu), bin, ...args] : [bin, ...args];
    const child = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'inherit', obj.program('mytcpdump').fd] });
    let out = '';
    child.stdout!.on('data', (d) => { out += String(d); });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    if (code !== 0) throw new Error(`producer exited ${code}`);
    const prod = JSON.parse(out) as { runs: number; seconds: number; rate: number };
    for (let i = 0; i < 200 && rb.pending() > 0; i++) await new Promise((r) => setTimeout(r, 10));
    clearInterval(sample);
    rb.close();
    await consuming;
    const c = capture.counters();
    if (c.events + c.lost !== prod.runs) throw new Error(`kernel counted ${c.events} events + ${c.lost} lost, producer ran ${prod.runs} times`);
    if (events !== c.events) throw new Error(`reader got ${events} events, kernel submitted ${c.events}`);
    if (sum !== events * 46) throw new Error(`reader summed pkt_len to ${sum}, expected ${events * 46}`);
    return {
      group: 'ringbuf', figure: `sustained ${seconds} s at full rate, ${{ raw: 'woken, raw (count + sum pkt_len)', decode: 'woken, decoding each event', timer: 'raw, drained every 20 ms' }[mode]}: events lost`, unit: 'events', ts: c.lost,
      goal: '0 lost', pass: c.lost === 0,
      note: `mytcpdump's XDP program test-run on a 60-byte UDP frame by a C process${haveTaskset ? ` pinned to CPU ${cpu}` : ''}, ` +
        `${prod.runs} runs in ${prod.seconds.toFixed(2)} s = ${(prod.rate / 1e6).toFixed(1)}M events/s ` +
        `(BPF_PROG_TEST_RUN calls of repeat ${repeat}; each call also costs ~15-20 ms of XDP dispatcher update, so the ` +
        `instantaneous rate is higher); TS RingBufReader.${{
          raw: 'consumeRaw (woken by the map fd) reading pkt_len through a typed-array view',
          decode: 'consume (woken by the map fd) decoding every event into a PacketEvent object, as the loader does',
          timer: 'consumeRaw with intervalMs 20: drained from a timer instead of fd wake-ups (the kernel wakes a reader whenever a commit finds it caught up, which costs the producer)',
        }[mode]}, on the event loop: ` +
        `${events} events read, peak backlog ${formatBytes(Math.ceil(peak / 4096) * 4096)} of the default ${formatBytes(DEFAULT_RING_BYTES)} ring.`,
    };
  } finally {
    obj.close();
  }
}

const bench: BenchModule = {
  name: 'ringbuf',
  async run({ quick }) {
    const rows = await burstFigures(quick);
    for (const mode of ['raw', 'decode', 'timer'] as const) rows.push(await sustainedFigure(quick, mode));
    return rows;
  },
};
export default bench;

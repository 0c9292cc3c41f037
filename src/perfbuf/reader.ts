/**
 * PerfBufReader: reads a BPF_MAP_TYPE_PERF_EVENT_ARRAY (what
 * bpf_perf_event_output writes to) from Node's event loop, with the same
 * shape as RingBufReader: the same options where they apply, consume(),
 * consumeRaw(), records(), batches(), read(), readRaw(), stats(), close().
 *
 *   using pb = PerfBufReader.open(obj, 'events', { codec: MyEvent });
 *   for await (const ev of pb) console.log(ev.pid);
 *   await pb.consume((ev) => { ... }, { signal });
 *
 * Unlike a ring buffer, a perf buffer is one ring per CPU: for every
 * online CPU the reader opens a software perf event
 * (PERF_COUNT_SW_BPF_OUTPUT, sample_type PERF_SAMPLE_RAW) on that CPU,
 * maps it (1 metadata page + 2^n data pages), and stores its fd in the
 * map at the CPU's index, where bpf_perf_event_output(ctx, &map,
 * BPF_F_CURRENT_CPU, ...) finds it. Records from different CPUs therefore
 * arrive in no global order: the reader drains the rings one after the
 * other. Samples the kernel dropped because a ring was full come as
 * PERF_RECORD_LOST records, summed into `lost`. The kernel writes a ring's
 * LOST record into that ring only when a later sample on the same CPU finds
 * room: until then (e.g. the producer moved to another CPU) the loss is
 * not visible here; the perf ring has no other counter of it.
 *
 * Waking: one watch per CPU fd (watchReadable, i.e. libuv's own epoll)
 * rather than an epoll fd of our own: libuv already multiplexes the fds,
 * so a second epoll layer adds a syscall and ffi code for nothing; any
 * readable fd drains every ring (a pass over an empty ring costs one load).
 * A perf fd reports readable once per kernel wakeup (perf_poll clears its
 * flag), not while data is pending: when a pass stops at `batch`, the
 * reader schedules the next pass itself (setImmediate).
 *
 * Needs Linux >= 4.4 (bpf_perf_event_output with BPF_F_CURRENT_CPU) and
 * root or CAP_PERFMON (perf_event_open per CPU for every process).
 */
import type { BpfObject } from '../object.js';
import type { Codec } from '../codec.js';
import { BpfError, Errno } from '../errors.js';
import { bpf } from '../ffi/libbpf.js';
import { lastErrno } from '../ffi/native.js';
import { allocNative, closeFd, pageSize, watchReadable, type FdWatch } from '../ffi/sys.js';
import { onlineCpus, perfEventEnable, perfEventOpen, PERF_SAMPLE_RAW, PerfSwConfig, PerfType } from '../ffi/perf.js';
import { mapInfoByFd, MapType, possibleCpus } from '../map.js';
import { checkedDecoder, copyRecord, viewDecoder, type RecordDecoder } from '../ringbuf/decode.js';
import type { RawRecordHandler } from '../ringbuf/raw.js';
import { PerfRingMapping, PerfRingParser } from './ring.js';

export type { RawRecordHandler, RingViews } from '../ringbuf/raw.js';

/** Options of a PerfBufReader. */
export interface PerfBufReaderOptions<T> {
  /** Decodes each sample's raw data (e.g. a struct codec); without one, samples are copied into Buffers. */
  codec?: Codec<T>;
  /** Decode struct codecs through typed-array views (see ringbuf/decode.ts). Default true. */
  viewDecode?: boolean;
  /** Most samples handled per turn of the event loop (default 65536). */
  batch?: number;
  /** The map's name, for messages (default: the kernel's name of the map). */
  name?: string;
  /** Data pages per CPU ring, a power of two (default 64: 256 KiB per CPU with 4 KiB pages). */
  pageCount?: number;
  /**
   * Wake the reader every this many samples per CPU (default 1, as libbpf's
   * perf_buffer). Larger values cost the producer fewer wakeups; samples
   * wait in the ring until the count is reached (or use intervalMs).
   */
  wakeupEvents?: number;
  /** Instead of wakeupEvents: wake the reader when a CPU's ring holds this many bytes (the perf "watermark"). */
  wakeupBytes?: number;
  /** Only these CPUs (default: every online CPU below the map's size). */
  cpus?: number[];
}

/** What a reader has done so far. */
export interface PerfBufStats {
  /** Samples handed to handlers or iterators. */
  consumed: number;
  /** Samples the kernel dropped because a CPU's ring was full (from PERF_RECORD_LOST records read so far). */
  lost: number;
  /** Bytes written by the kernel and not consumed yet, over all CPUs. */
  pending: number;
}

/** Options of the waiting forms (consume, records, batches). */
export interface PerfWaitOptions {
  /** Stops consuming (the reader stays open) when aborted. */
  signal?: AbortSignal;
}

/** Options of consume() and consumeRaw(). */
export interface PerfConsumeOptions extends PerfWaitOptions {
  /** Drain every this many milliseconds from a timer instead of being woken by the fds. */
  intervalMs?: number;
}

/** One CPU's ring. */
interface CpuRing {
  cpu: number;
  fd: number;
  map: PerfRingMapping;
  parser: PerfRingParser;
  watch?: FdWatch;
}

/** Reads one perf event array map; see the module comment. */
export class PerfBufReader<T = Buffer> implements AsyncIterable<T> {
  /** The map's name. */
  readonly name: string;
  /** Data bytes of each CPU's ring. */
  readonly size: number;
  /** The CPUs with a ring, in map index order. */
  readonly cpus: readonly number[];
  readonly #mapFd: number;
  #rings: CpuRing[];
  /** Every ring's parser, kept after close so the counters stay readable. */
  readonly #parsers: PerfRingParser[] = [];
  readonly #decode: RecordDecoder<T>;
  readonly #batch: number;
  #closed = false;
  #reading = false;
  #interrupted = false;
  #listening = false;
  #again: NodeJS.Immediate | undefined;
  #active: string | undefined;
  #pump: (() => void) | undefined;
  #waiter: (() => void) | undefined;
  #onClose: (() => void) | undefined;

  /**
   * Opens and maps a perf ring on every online CPU (or `opts.cpus`) and
   * stores each in the perf event array behind `fd` (which stays the
   * caller's: close the reader before the fd's object). Throws a BpfError:
   * EINVAL when the fd is not a perf event array or pageCount is not a
   * power of two; the errno of a refused perf_event_open (EACCES without
   * privilege), mmap or map update. Nothing stays open when it throws.
   */
  constructor(fd: number, opts: PerfBufReaderOptions<T> = {}) {
    const info = mapInfoByFd(fd, opts.name);
    const name = opts.name ?? info.name;
    this.name = name;
    if (info.type !== MapType.PERF_EVENT_ARRAY) {
      throw new BpfError(`open perf buffer ${name}`, Errno.EINVAL, `its type is ${info.typeName}, not perf_event_array`);
    }
    const pages = opts.pageCount ?? 64;
    if (!Number.isInteger(pages) || pages < 1 || (pages & (pages - 1)) !== 0) {
      throw new BpfError(`open perf buffer ${name}`, Errno.EINVAL, `pageCount ${pages} is not a power of two`);
    }
    this.size = pages * pageSize;
    const limit = Math.min(info.maxEntries, possibleCpus);
    const cpus = opts.cpus ?? onlineCpus().filter((c) => c < limit);
    for (const c of cpus) {
      if (!Number.isInteger(c) || c < 0 || c >= limit) throw new BpfError(`open perf buffer ${name}`, Errno.EINVAL, `CPU ${c} has no slot (the map has ${info.maxEntries}, the machine ${possibleCpus} possible CPUs)`);
    }
    this.cpus = cpus;
    this.#mapFd = fd;
    this.#decode = opts.codec
      ? ((opts.viewDecode ?? true) && viewDecoder(opts.codec, name)) || checkedDecoder(opts.codec, name)
      : (copyRecord as unknown as RecordDecoder<T>);
    this.#batch = Math.max(1, Math.floor(opts.batch ?? 65536));
    this.#rings = [];
    const key = allocNative(4);
    const val = allocNative(4);
    try {
      for (const cpu of cpus) {
        const what = `perf buffer ${name} on CPU ${cpu}`;
        const wakeup = opts.wakeupBytes !== undefined ? { wakeup: opts.wakeupBytes, watermark: true } : { wakeup: Math.max(1, opts.wakeupEvents ?? 1) };
        const r = perfEventOpen({
          type: PerfType.SOFTWARE, config: PerfSwConfig.BPF_OUTPUT, sample: 1, sampleType: PERF_SAMPLE_RAW, disabled: true, ...wakeup,
        }, -1, cpu);
        if ('errno' in r) throw new BpfError(`open ${what}`, r.errno, r.errno === Errno.EACCES || r.errno === Errno.EPERM ? 'needs root or CAP_PERFMON' : undefined);
        let map: PerfRingMapping;
        try {
          map = PerfRingMapping.open(r.fd, pages, what);
        } catch (e) {
          closeFd(r.fd);
          throw e;
        }
        const parser = new PerfRingParser(map.mem);
        this.#rings.push({ cpu, fd: r.fd, map, parser });
        this.#parsers.push(parser);
        key.buf.writeUInt32LE(cpu, 0);
        val.buf.writeInt32LE(r.fd, 0);
        if (bpf.map_update_elem_at(fd, key.at, val.at, 0) < 0) throw new BpfError(`store ${what} in its map`, lastErrno() || Errno.EINVAL);
        const e = perfEventEnable(r.fd);
        if (e) throw new BpfError(`enable ${what}`, e);
      }
    } catch (e) {
      this.#release();
      throw e;
    } finally {
      key.free();
      val.free();
    }
  }

  /**
   * A reader of the perf event array `map` of a loaded object. Throws a
   * BpfError (no such map, not loaded, not a perf event array, see the constructor).
   */
  static open<T = Buffer>(obj: BpfObject, map: string, opts: PerfBufReaderOptions<T> = {}): PerfBufReader<T> {
    return new PerfBufReader<T>(obj.mapFd(map), { name: map, ...opts });
  }

  /** Samples handed out so far. */
  get consumed(): number {
    let n = 0;
    for (const p of this.#parsers) n += p.samples;
    return n;
  }

  /**
   * Samples the kernel dropped (ring full), as its LOST records said so far
   * (a CPU's record arrives with that CPU's next sample that fits).
   */
  get lost(): number {
    let n = 0;
    for (const p of this.#parsers) n += p.lost;
    return n;
  }

  /** Lost samples per CPU, as [cpu, lost] pairs. */
  lostPerCpu(): Array<[number, number]> {
    return this.#parsers.map((p, i) => [this.cpus[i], p.lost]);
  }

  /** True after close(). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Data bytes mapped for all CPUs (the perf buffer's memory besides one metadata page per CPU). */
  get memory(): number {
    return this.size * this.cpus.length;
  }

  /** Bytes written and not consumed yet, over all CPUs (0 once closed). */
  pending(): number {
    if (this.#closed) return 0;
    let n = 0;
    for (const r of this.#rings) n += r.parser.pending();
    return n;
  }

  /** Counters in one object. */
  stats(): PerfBufStats {
    return { consumed: this.consumed, lost: this.lost, pending: this.pending() };
  }

  #drain(handler: RawRecordHandler, max: number): number {
    if (this.#closed) throw new BpfError(`read perf buffer ${this.name}`, Errno.EBADF, 'reader is closed');
    if (this.#reading) throw new BpfError(`read perf buffer ${this.name}`, Errno.EBUSY, 'already reading (called from a record handler)');
    this.#reading = true;
    this.#interrupted = false;
    for (const p of this.#parsers) p.halt = false;
    let n = 0;
    try {
      // Passes over every ring until they are empty or max is reached.
      for (;;) {
        let pass = 0;
        for (const r of this.#rings) {
          if (n >= max || this.#closed || this.#interrupted) return n;
          const got = r.parser.read(handler, max - n, `perf buffer ${this.name}`);
          n += got;
          pass += got;
        }
        if (pass === 0) return n;
      }
    } finally {
      this.#reading = false;
      if (this.#closed) this.#release();
    }
  }

  /**
   * Synchronously hands every sample (at most `max`) to `handler` as a
   * zero-copy view of an aligned copy, valid only during the call; returns
   * how many. Throws a BpfError (EBADF once closed, EBUSY from inside a
   * handler, EIO for a corrupt ring), or what the handler throws (its
   * sample counts as consumed).
   */
  readRaw(handler: RawRecordHandler, max = Infinity): number {
    return this.#drain(handler, max);
  }

  /**
   * Synchronously hands every sample (at most `max`) to `handler`, decoded
   * (or copied); returns how many. Throws like readRaw(), and a RangeError
   * for a sample shorter than the codec.
   */
  read(handler: (record: T) => void, max = Infinity): number {
    const decode = this.#decode;
    return this.#drain((data, off, len, v) => handler(decode(data, off, len, v)), max);
  }

  /** Makes the read in progress return after the current record (no more handed out). */
  #halt(): void {
    this.#interrupted = true;
    for (const p of this.#parsers) p.halt = true;
  }

  #claim(what: string): void {
    if (this.#closed) throw new BpfError(`${what} perf buffer ${this.name}`, Errno.EBADF, 'reader is closed');
    if (this.#active) throw new BpfError(`${what} perf buffer ${this.name}`, Errno.EBUSY, `already consumed by ${this.#active}()`);
    this.#active = what;
  }

  #onReadable(): void {
    if (this.#pump) return this.#pump();
    this.#pause();
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }

  #listen(): void {
    if (this.#listening) return;
    this.#listening = true;
    for (const r of this.#rings) {
      if (r.watch) r.watch.resume();
      else r.watch = watchReadable(r.fd, () => this.#onReadable());
    }
  }

  #pause(): void {
    if (!this.#listening) return;
    this.#listening = false;
    for (const r of this.#rings) r.watch?.pause();
  }

  #consume(what: string, handler: RawRecordHandler, opts: PerfConsumeOptions): Promise<void> {
    const { signal, intervalMs } = opts;
    if (intervalMs !== undefined && !(intervalMs > 0)) throw new RangeError(`intervalMs: ${intervalMs} is not a positive number`);
    this.#claim(what);
    const batch = intervalMs === undefined ? this.#batch : Infinity;
    return new Promise<void>((resolve, reject) => {
      let finished = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (err?: unknown) => {
        if (finished) return;
        finished = true;
        if (this.#reading) this.#halt();
        clearInterval(timer);
        if (this.#again) clearImmediate(this.#again);
        this.#again = undefined;
        this.#pump = undefined;
        this.#onClose = undefined;
        this.#active = undefined;
        this.#pause();
        signal?.removeEventListener('abort', onAbort);
        if (err === undefined) resolve();
        else reject(err);
      };
      const onAbort = () => finish();
      if (signal?.aborted) return finish();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#onClose = () => finish();
      const pump = () => {
        this.#again = undefined;
        let n: number;
        try {
          n = this.#drain(handler, batch);
        } catch (e) {
          return finish(e);
        }
        if (this.#closed) return finish();
        // A full batch may leave samples behind, and perf fds only report new wakeups.
        if (n >= batch && !finished && intervalMs === undefined) this.#again = setImmediate(pump);
      };
      this.#pump = () => { if (!this.#again) pump(); };
      if (intervalMs === undefined) {
        this.#listen();
        this.#again = setImmediate(pump); // samples written before the watch started
      } else {
        timer = setInterval(pump, intervalMs);
      }
    });
  }

  /**
   * Calls `handler` with each sample, decoded (or copied), as the kernel
   * writes them, from the event loop, until close() or the signal aborts:
   * then the promise resolves. It rejects with what the handler throws
   * (the reader stays open). Throws a BpfError (EBUSY) when another
   * consumer is active, EBADF once closed; a RangeError for a bad intervalMs.
   */
  consume(handler: (record: T) => void, opts: PerfConsumeOptions = {}): Promise<void> {
    const decode = this.#decode;
    return this.#consume('consume', (data, off, len, v) => handler(decode(data, off, len, v)), opts);
  }

  /** Like consume(), with zero-copy raw samples (see readRaw()). */
  consumeRaw(handler: RawRecordHandler, opts: PerfConsumeOptions = {}): Promise<void> {
    return this.#consume('consumeRaw', handler, opts);
  }

  #readable(signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        signal?.removeEventListener('abort', done);
        if (this.#waiter === done) this.#waiter = undefined;
        this.#pause();
        resolve();
      };
      if (signal?.aborted || this.#closed) return resolve();
      this.#waiter = done;
      signal?.addEventListener('abort', done, { once: true });
      this.#listen();
    });
  }

  /**
   * The samples, decoded (or copied), as batches of at most `batch` that
   * arrived together; waits on the event loop when every ring is empty.
   * Ends at close() or when the signal aborts. Throws a BpfError (EBUSY)
   * when another consumer is active, EBADF once closed.
   */
  async *batches(opts: PerfWaitOptions = {}): AsyncGenerator<T[], void, undefined> {
    this.#claim('batches');
    const { signal } = opts;
    try {
      while (!this.#closed && !signal?.aborted) {
        const out: T[] = [];
        this.read((r) => { out.push(r); }, this.#batch);
        if (out.length === 0) await this.#readable(signal);
        else yield out;
      }
    } finally {
      this.#active = undefined;
    }
  }

  /**
   * The samples one by one, decoded (or copied), each consumed only when
   * it is handed out. Ends at close() or when the signal aborts. Throws
   * like batches().
   */
  async *records(opts: PerfWaitOptions = {}): AsyncGenerator<T, void, undefined> {
    this.#claim('records');
    const { signal } = opts;
    let got = false;
    let rec: T | undefined;
    const take = (r: T) => { got = true; rec = r; };
    try {
      while (!this.#closed && !signal?.aborted) {
        got = false;
        this.read(take, 1);
        if (got) {
          const r = rec as T;
          rec = undefined;
          yield r;
        } else {
          await this.#readable(signal);
        }
      }
    } finally {
      this.#active = undefined;
    }
  }

  /** records() */
  [Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    return this.records();
  }

  /** Takes the rings out of the map, stops the watches, unmaps and closes the perf fds. */
  #release(): void {
    const rings = this.#rings;
    this.#rings = [];
    if (rings.length === 0) return;
    const key = allocNative(4);
    try {
      for (const r of rings) {
        r.watch?.close();
        key.buf.writeUInt32LE(r.cpu, 0);
        bpf.map_delete_elem_at(this.#mapFd, key.at); // fails harmlessly when the map is gone
        r.map.unmap();
        closeFd(r.fd);
      }
    } finally {
      key.free();
    }
  }

  /**
   * Stops every consumer (consume() resolves, iterators end), removes the
   * rings from the map (bpf_perf_event_output then fails with ENOENT),
   * unmaps them and closes their perf events (at the end of the current
   * read when called from a handler). Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#halt();
    this.#listening = false;
    if (this.#again) clearImmediate(this.#again);
    this.#again = undefined;
    if (!this.#reading) this.#release();
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
    this.#onClose?.();
  }

  /** close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * RingBufReader: reads a BPF_MAP_TYPE_RINGBUF from Node's event loop without
 * blocking it. Woken when the map's fd becomes readable, it drains what the
 * kernel committed (a bounded batch per turn of the loop) and hands each
 * record over: zero-copy to a raw handler, or decoded through a codec.
 *
 *   using rb = RingBufReader.open(obj, 'events', { codec: PacketEvent });
 *   for await (const ev of rb) console.log(ev.src_ip);           // async iterator
 *   await rb.consume((ev) => { ... }, { signal });                // callback form
 *   rb.readRaw((data, off, len, v) => { sum += v.u32[off >> 2]; }); // synchronous, zero-copy
 *
 * One consumer at a time: a ring has a single consumer position.
 */
import type { BpfObject } from '../object.js';
import type { Codec } from '../codec.js';
import { BpfError, Errno } from '../errors.js';
import { watchReadable, type FdWatch } from '../ffi/sys.js';
import { RingMapping } from './ring.js';
import { RawRingReader, type RawRecordHandler, type RingViews } from './raw.js';
import { checkedDecoder, copyRecord, viewDecoder, type RecordDecoder } from './decode.js';

export type { RawRecordHandler, RingViews } from './raw.js';

/** Options of a RingBufReader. */
export interface RingBufReaderOptions<T> {
  /** Decodes each record (e.g. a struct codec); without one, records are copied into Buffers. */
  codec?: Codec<T>;
  /**
   * Decode struct codecs through typed-array views of the ring (the same
   * objects, several times faster; see decode.ts) when that is exact.
   * Default true; false always calls codec.decode.
   */
  viewDecode?: boolean;
  /**
   * Returns how many records the producer could not reserve (a kernel-side
   * counter, e.g. a per-CPU drop count): reported as `lost`.
   */
  lost?: () => number;
  /** Most records handled per turn of the event loop (default 65536). */
  batch?: number;
  /** The map's name, for messages (default: the kernel's name of the map). */
  name?: string;
}

/** What a reader has done so far. */
export interface RingBufStats {
  /** Records handed to handlers or iterators. */
  consumed: number;
  /** Records the producer discarded, skipped. */
  discarded: number;
  /** Records the producer could not reserve, when a `lost` counter was given. */
  lost: number | undefined;
  /** Bytes reserved by the producer and not consumed yet. */
  pending: number;
}

/** Options of the waiting forms (consume, records, batches). */
export interface WaitOptions {
  /** Stops consuming (the reader stays open) when aborted. */
  signal?: AbortSignal;
}

/** Options of consume() and consumeRaw(). */
export interface ConsumeOptions extends WaitOptions {
  /**
   * Drain every this many milliseconds from a timer instead of being woken
   * by the map's fd. The kernel wakes a waiting reader whenever a commit
   * finds it caught up, which costs the producer (on a busy ring, about
   * half its rate, see bench/ringbuf.bench.ts); a timer trades that for up
   * to this much latency. The ring must hold this long's worth of records.
   */
  intervalMs?: number;
}

/** Reads one ring buffer map; see the module comment. */
export class RingBufReader<T = Buffer> implements AsyncIterable<T> {
  /** The map's name. */
  readonly name: string;
  /** The ring's data size in bytes. */
  readonly size: number;
  readonly #fd: number;
  readonly #raw: RawRingReader;
  readonly #decode: RecordDecoder<T>;
  readonly #lost: (() => number) | undefined;
  readonly #batch: number;
  #watch: FdWatch | undefined;
  #active: string | undefined;
  /** consume(): drains on each readable event. */
  #pump: (() => void) | undefined;
  /** records()/batches(): resolves the pending wait. */
  #waiter: (() => void) | undefined;
  #onClose: (() => void) | undefined;

  /**
   * Maps the ring buffer map behind `fd` (which stays the caller's: close
   * the reader before the fd's object). Throws a BpfError: EINVAL when the
   * fd is not a ring buffer map, or the errno of a refused mmap.
   */
  constructor(fd: number, opts: RingBufReaderOptions<T> = {}) {
    const ring = RingMapping.open(fd, opts.name);
    this.#fd = fd;
    this.#raw = new RawRingReader(ring);
    this.name = ring.name;
    this.size = ring.size;
    this.#decode = opts.codec
      ? ((opts.viewDecode ?? true) && viewDecoder(opts.codec, ring.name)) || checkedDecoder(opts.codec, ring.name)
      : (copyRecord as unknown as RecordDecoder<T>);
    this.#lost = opts.lost;
    this.#batch = Math.max(1, Math.floor(opts.batch ?? 65536));
  }

  /**
   * A reader of the ring buffer map `map` of a loaded object. Throws a
   * BpfError (no such map, not loaded, not a ring buffer).
   */
  static open<T = Buffer>(obj: BpfObject, map: string, opts: RingBufReaderOptions<T> = {}): RingBufReader<T> {
    return new RingBufReader<T>(obj.mapFd(map), { name: map, ...opts });
  }

  /** Records handed out so far. */
  get consumed(): number {
    return this.#raw.consumed;
  }

  /** Discarded records skipped so far. */
  get discarded(): number {
    return this.#raw.discarded;
  }

  /** Records the producer could not reserve (from the `lost` counter), or undefined without one. */
  get lost(): number | undefined {
    return this.#lost?.();
  }

  /** True after close(). */
  get closed(): boolean {
    return this.#raw.closed;
  }

  /** Bytes the producer reserved that are not consumed yet (0 once closed). */
  pending(): number {
    return this.#raw.pending();
  }

  /** Counters in one object. */
  stats(): RingBufStats {
    return { consumed: this.consumed, discarded: this.discarded, lost: this.lost, pending: this.pending() };
  }

  /** Typed views over the ring's data, for raw handlers (invalid after close). Throws a BpfError (EBADF) once closed. */
  get views(): RingViews {
    if (this.closed) throw new BpfError(`read ring buffer ${this.name}`, Errno.EBADF, 'reader is closed');
    return this.#raw.views;
  }

  /**
   * Synchronously hands every committed record (at most `max`) to `handler`
   * as a zero-copy view, valid only during the call; returns how many.
   * Throws a BpfError (EBADF once closed, EBUSY from inside a handler), or
   * what the handler throws (its record counts as consumed).
   */
  readRaw(handler: RawRecordHandler, max = Infinity): number {
    return this.#raw.read(handler, max);
  }

  /**
   * Synchronously hands every committed record (at most `max`) to
   * `handler`, decoded (or copied); returns how many. Throws like readRaw(),
   * and a RangeError for a record shorter than the codec.
   */
  read(handler: (record: T) => void, max = Infinity): number {
    return this.#raw.readDecoded(this.#decode, handler, max);
  }

  #claim(what: string): void {
    if (this.closed) throw new BpfError(`${what} ring buffer ${this.name}`, Errno.EBADF, 'reader is closed');
    if (this.#active) throw new BpfError(`${what} ring buffer ${this.name}`, Errno.EBUSY, `already consumed by ${this.#active}()`);
    this.#active = what;
  }

  #onReadable(): void {
    if (this.#pump) return this.#pump();
    this.#watch?.pause();
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }

  #listen(): void {
    if (this.#watch) this.#watch.resume();
    else this.#watch = watchReadable(this.#fd, () => this.#onReadable());
  }

  #consume(what: string, step: () => void, opts: ConsumeOptions): Promise<void> {
    const { signal, intervalMs } = opts;
    if (intervalMs !== undefined && !(intervalMs > 0)) throw new RangeError(`intervalMs: ${intervalMs} is not a positive number`);
    this.#claim(what);
    return new Promise<void>((resolve, reject) => {
      let finished = false;
      const finish = (err?: unknown) => {
        if (finished) return;
        finished = true;
        this.#raw.interrupt();
        clearInterval(timer);
        this.#pump = undefined;
        this.#onClose = undefined;
        this.#active = undefined;
        this.#watch?.pause();
        signal?.removeEventListener('abort', onAbort);
        if (err === undefined) resolve();
        else reject(err);
      };
      const onAbort = () => finish();
      let timer: NodeJS.Timeout | undefined;
      if (signal?.aborted) return finish();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#onClose = () => finish();
      this.#pump = () => {
        try {
          step();
        } catch (e) {
          return finish(e);
        }
        if (this.closed) finish();
      };
      if (intervalMs === undefined) this.#listen();
      else timer = setInterval(() => this.#pump?.(), intervalMs);
    });
  }

  /**
   * Calls `handler` with each record, decoded (or copied), as the kernel
   * commits them, from the event loop, until close() or the signal aborts
   * (no record is handed out after either, even within a batch): then the
   * promise resolves. It rejects with what the handler throws (the
   * reader stays open). Throws a BpfError (EBUSY) when another consumer is
   * active, EBADF once closed; a RangeError for a bad intervalMs.
   */
  consume(handler: (record: T) => void, opts: ConsumeOptions = {}): Promise<void> {
    const decode = this.#decode;
    const batch = opts.intervalMs === undefined ? this.#batch : Infinity;
    return this.#consume('consume', () => { this.#raw.readDecoded(decode, handler, batch); }, opts);
  }

  /** Like consume(), with zero-copy raw records (see readRaw()). */
  consumeRaw(handler: RawRecordHandler, opts: ConsumeOptions = {}): Promise<void> {
    const batch = opts.intervalMs === undefined ? this.#batch : Infinity;
    return this.#consume('consumeRaw', () => { this.#raw.read(handler, batch); }, opts);
  }

  #readable(signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        signal?.removeEventListener('abort', done);
        if (this.#waiter === done) this.#waiter = undefined;
        this.#watch?.pause();
        resolve();
      };
      if (signal?.aborted || this.closed) return resolve();
      this.#waiter = done;
      signal?.addEventListener('abort', done, { once: true });
      this.#listen();
    });
  }

  /**
   * The records, decoded (or copied), as batches of at most `batch` that
   * arrived together; waits on the event loop when the ring is empty. Ends
   * at close() or when the signal aborts. Throws a BpfError (EBUSY) when
   * another consumer is active, EBADF once closed.
   */
  async *batches(opts: WaitOptions = {}): AsyncGenerator<T[], void, undefined> {
    this.#claim('batches');
    const { signal } = opts;
    try {
      while (!this.closed && !signal?.aborted) {
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
   * The records one by one, decoded (or copied), each consumed from the ring
   * only when it is handed out, so breaking out of the loop loses nothing.
   * Ends at close() or when the signal aborts. Throws like batches(). (At
   * millions of records per second, consume() and batches() cost less.)
   */
  async *records(opts: WaitOptions = {}): AsyncGenerator<T, void, undefined> {
    this.#claim('records');
    const { signal } = opts;
    let got = false;
    let rec: T | undefined;
    const take = (r: T) => { got = true; rec = r; };
    try {
      while (!this.closed && !signal?.aborted) {
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

  /**
   * Stops every consumer (consume() resolves, iterators end), stops watching
   * the fd and unmaps the ring. Idempotent.
   */
  close(): void {
    if (this.closed) return;
    this.#raw.close();
    this.#watch?.close();
    this.#watch = undefined;
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

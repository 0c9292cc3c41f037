/**
 * The consumer side of the ring buffer protocol, synchronously: hands each
 * committed record to a handler as a zero-copy view and advances the
 * consumer position. No waiting here (see reader.ts).
 *
 * The loop, like libbpf's ringbuf_process_ring():
 *   read the producer position (acquire); from the consumer position up to
 *   it, read each record's header (acquire): BUSY means the producer has not
 *   committed it yet, so stop there; DISCARD means skip it; otherwise hand
 *   [offset + 8, offset + 8 + len) to the handler. Step by the record's
 *   8-byte aligned span. Publish the new consumer position (release) after
 *   the records are handled, every `publishBytes` and at the end of a pass,
 *   then read the producer position again until nothing new arrived.
 *
 * Speed: the loop is compiled once per reader (new Function), so the
 * handler's call site sees one function and V8 can inline it. Header loads:
 * V8 (as of Node 20) does not inline Atomics.load but calls a builtin, which
 * costs more than the rest of the per-record work. On x86-64 every load
 * already has acquire semantics (TSO: loads are not reordered with older
 * loads), and V8 keeps typed-array loads in program order on its effect
 * chain, so there a plain load of the header is the acquire load. Every
 * other architecture gets Atomics.load. Positions always go through Atomics.
 */
import { BpfError, Errno } from '../errors.js';
import { BPF_RINGBUF_DISCARD_BIT, BPF_RINGBUF_HDR_SZ, type RingMapping } from './ring.js';
import type { RecordDecoder } from './decode.js';

/**
 * Typed views over the ring's data (the same bytes as `bytes`), for fast
 * reads of record fields: records start 8-byte aligned, so a field at byte
 * `f` of a record at `offset` is `u32[(offset + f) >> 2]` when f is a
 * multiple of 4, `u64[(offset + f) >> 3]` when a multiple of 8 (host order).
 * Typed arrays are much faster than DataView or Buffer methods in V8.
 */
export interface RingViews {
  readonly bytes: Buffer;
  readonly u16: Uint16Array;
  readonly u32: Uint32Array;
  readonly i32: Int32Array;
  readonly u64: BigUint64Array;
  readonly i64: BigInt64Array;
  readonly f64: Float64Array;
  readonly dataView: DataView;
}

/**
 * Called once per record with the ring's data, the record's offset in it,
 * its length, and typed views over the same bytes. The bytes are only valid
 * until the handler returns: copy what must outlive the call.
 */
export type RawRecordHandler = (data: Buffer, offset: number, length: number, views: RingViews) => void;

/** Typed views over a mapped ring's data. */
export function ringViews(data: Buffer): RingViews {
  const { buffer, byteOffset, length } = data;
  // Element counts by division, not `>>`: a 1 GiB ring's double mapping is 2^31 bytes, negative as an int32.
  return {
    bytes: data,
    u16: new Uint16Array(buffer, byteOffset, Math.floor(length / 2)),
    u32: new Uint32Array(buffer, byteOffset, Math.floor(length / 4)),
    i32: new Int32Array(buffer, byteOffset, Math.floor(length / 4)),
    u64: new BigUint64Array(buffer, byteOffset, Math.floor(length / 8)),
    i64: new BigInt64Array(buffer, byteOffset, Math.floor(length / 8)),
    f64: new Float64Array(buffer, byteOffset, Math.floor(length / 8)),
    dataView: new DataView(buffer, byteOffset, length),
  };
}

/** True where a plain load of a header is an acquire load (see above). */
export const PLAIN_LOADS_ACQUIRE = process.arch === 'x64' || process.arch === 'ia32';

/** The state a compiled loop reads and updates. */
interface LoopState {
  data: Buffer;
  views: RingViews;
  words: Int32Array;
  maskBig: bigint;
  producerPos: BigInt64Array;
  consumerPos: BigInt64Array;
  publishBytes: number;
  closing: boolean;
  /** Records this read may still hand out: the read's max, 0 once closed. */
  limit: number;
  consumed: number;
  discarded: number;
  decode: RecordDecoder<unknown> | undefined;
}

/** A read's max as the int32 the loop compares with. */
function clampMax(max: number): number {
  return max >= 0x7fffffff ? 0x7fffffff : Math.floor(max);
}

type Loop<H> = (s: LoopState, handler: H, max: number) => number;

function compileLoop<H>(deliver: string, acquire: boolean): Loop<H> {
  const load = acquire ? 'Atomics.load(words, off >> 2)' : 'words[off >> 2]';
  // A pass reads [start, start + avail) where start = cons & mask: past the
  // end of the ring it reads the second mapping of the data, so offsets need
  // no masking. They stay below 2^31 (rings are at most 1 GiB), which keeps
  // V8 on int32 arithmetic. The pass is cut into chunks of publishBytes; the
  // consumer position is published after each, so the per-record path has
  // one bound to check.
  const src = `
return function readRing(s, handler, max) {
  const data = s.data, views = s.views, words = s.words;
  const producerPos = s.producerPos, consumerPos = s.consumerPos, publishBytes = s.publishBytes, decode = s.decode;
  let cons = Atomics.load(consumerPos, 0), n = 0, skipped = 0, off = 0, published = 0;
  s.limit = max;
  try {
    for (;;) {
      const avail = Number(Atomics.load(producerPos, 0) - cons) | 0;
      if (avail === 0) break;
      const start = Number(cons & s.maskBig) | 0;
      const last = start + avail;
      let stop = false;
      off = start;
      published = start;
      while (off < last) {
        const end = Math.min(last, off + publishBytes);
        while (off < end) {
          const hdr = ${load};
          if (hdr < 0) { stop = true; break; }            // BPF_RINGBUF_BUSY_BIT (the sign bit): not committed yet
          const len = hdr & 0x3fffffff;
          const at = off + ${BPF_RINGBUF_HDR_SZ};
          off = (at + len + 7) & ~7;                      // the next header
          if ((hdr & ${BPF_RINGBUF_DISCARD_BIT}) === 0) {
            n++;
            ${deliver}
            if (n >= s.limit) { stop = true; break; }     // max reached, or closed by the handler
          } else {
            skipped++;
          }
        }
        if (off !== published) {
          cons += BigInt(off - published);
          published = off;
          Atomics.store(consumerPos, 0, cons);
        }
        if (stop) break;
      }
      if (stop) break;
    }
  } finally {
    if (off !== published) {
      // The handler threw: its record and the ones before it are consumed.
      cons += BigInt(off - published);
      Atomics.store(consumerPos, 0, cons);
    }
    s.consumed += n;
    s.discarded += skipped;
  }
  return n;
};`;
  return new Function(src)() as Loop<H>;
}

/** Reads records out of a mapped ring, in order, each once. */
export class RawRingReader {
  #ring: RingMapping | null;
  readonly #s: LoopState;
  #reading = false;
  #rawLoop: Loop<RawRecordHandler> | undefined;
  #decodeLoop: Loop<(v: unknown) => void> | undefined;
  /** Use Atomics.load for every header even where a plain load is an acquire load (for comparisons). */
  readonly atomicHeaders: boolean;

  /**
   * Takes ownership of `ring` (close() unmaps it). The consumer position is
   * published at least every `publishBytes` bytes (default: an eighth of the
   * ring, at most 256 KiB) so the producer gets room back during long passes.
   */
  constructor(ring: RingMapping, opts: { publishBytes?: number; atomicHeaders?: boolean } = {}) {
    this.#ring = ring;
    this.atomicHeaders = opts.atomicHeaders ?? !PLAIN_LOADS_ACQUIRE;
    this.#s = {
      data: ring.data,
      views: ringViews(ring.data),
      words: ring.words,
      maskBig: BigInt(ring.mask),
      producerPos: ring.producerPos,
      consumerPos: ring.consumerPos,
      publishBytes: Math.max(8, Math.floor(opts.publishBytes ?? Math.min(ring.size / 8, 256 * 1024))),
      closing: false,
      limit: 0,
      consumed: 0,
      discarded: 0,
      decode: undefined,
    };
  }

  /** Records handed to a handler so far. */
  get consumed(): number {
    return this.#s.consumed;
  }

  /** Records skipped because the producer discarded them. */
  get discarded(): number {
    return this.#s.discarded;
  }

  /** True after close(). */
  get closed(): boolean {
    return this.#s.closing;
  }

  /** Typed views over the ring's data, as handlers get them. Invalid after close(). */
  get views(): RingViews {
    return this.#s.views;
  }

  /** The ring's name and size; throws a BpfError (EBADF) once closed. */
  get ring(): RingMapping {
    if (!this.#ring || this.#s.closing) throw new BpfError('read ring buffer', Errno.EBADF, 'reader is closed');
    return this.#ring;
  }

  /** Bytes the producer has reserved past the consumer position (0 once closed). */
  pending(): number {
    if (!this.#ring || this.#s.closing) return 0;
    return this.#ring.pending();
  }

  #enter(): void {
    const ring = this.ring;
    if (this.#reading) throw new BpfError(`read ring buffer ${ring.name}`, Errno.EBUSY, 'already reading (called from a record handler)');
    this.#reading = true;
  }

  #leave(): void {
    this.#reading = false;
    if (this.#s.closing) this.#release();
  }

  /**
   * Hands every committed record to `handler` (zero-copy), at most `max`,
   * and returns how many it handed. Stops early at a record still being
   * written, and after the handler closes the reader. A handler that throws
   * stops the read: its record counts as consumed, and the error propagates.
   * Throws a BpfError: EBADF when closed, EBUSY when called from a handler.
   */
  read(handler: RawRecordHandler, max = Infinity): number {
    this.#enter();
    if (!(max >= 1)) { this.#leave(); return 0; }
    try {
      this.#rawLoop ??= compileLoop<RawRecordHandler>('handler(data, at, len, views);', this.atomicHeaders);
      return this.#rawLoop(this.#s, handler, clampMax(max));
    } finally {
      this.#leave();
    }
  }

  /**
   * Like read(), but hands `decode(data, offset, length, views)` of each record to
   * `handler`. A reader keeps one decoder: the first one given (its loop is
   * compiled around it). Throws like read().
   */
  readDecoded<T>(decode: RecordDecoder<T>, handler: (value: T) => void, max = Infinity): number {
    this.#enter();
    if (!(max >= 1)) { this.#leave(); return 0; }
    try {
      const s = this.#s;
      if (s.decode !== undefined && s.decode !== decode) throw new BpfError(`read ring buffer ${this.ring.name}`, Errno.EINVAL, 'a reader decodes with one decoder');
      s.decode = decode as RecordDecoder<unknown>;
      this.#decodeLoop ??= compileLoop<(v: unknown) => void>('handler(decode(data, at, len, views));', this.atomicHeaders);
      return this.#decodeLoop(this.#s, handler as (v: unknown) => void, clampMax(max));
    } finally {
      this.#leave();
    }
  }

  /** Makes the read() in progress (if any) return after the current record; the reader stays open. */
  interrupt(): void {
    if (this.#reading) this.#s.limit = 0;
  }

  #release(): void {
    const r = this.#ring;
    this.#ring = null;
    r?.unmap();
  }

  /**
   * Closes the reader and unmaps the ring (at the end of the current read
   * when called from a handler). Idempotent.
   */
  close(): void {
    if (this.#s.closing) return;
    this.#s.closing = true;
    this.#s.limit = 0;
    if (!this.#reading) this.#release();
  }
}

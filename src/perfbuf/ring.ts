/**
 * One CPU's perf ring as the kernel lays it out, and the consumer side of
 * its protocol, synchronously (no waiting here: see reader.ts).
 *
 * Memory (one mmap of the perf event fd, read-write so the kernel honours
 * the consumer position):
 *   offset 0          struct perf_event_mmap_page: data_head (u64) at byte
 *                     1024, written by the kernel; data_tail (u64) at 1032,
 *                     written by the consumer
 *   offset pagesize   2^n data pages, mapped once: a record that reaches
 *                     the end continues at the start (no double mapping,
 *                     unlike a BPF ring buffer)
 *
 * Records: struct perf_event_header { u32 type; u16 misc; u16 size } and
 * `size` bytes in all, 8-byte aligned, so a header never straddles the end.
 *   PERF_RECORD_SAMPLE (9), sample_type PERF_SAMPLE_RAW: u32 raw_size, then
 *     raw_size bytes (what bpf_perf_event_output wrote, padded by the
 *     kernel so the record stays 8-byte aligned: raw_size is 4 mod 8)
 *   PERF_RECORD_LOST (2): u64 id, u64 lost: samples the kernel dropped
 *     because the ring was full
 *
 * The loop, as libbpf's perf_event_read_simple(): read data_head (acquire,
 * Atomics.load), hand each record from data_tail up to it, then publish
 * data_tail (release, Atomics.store) so the kernel may reuse the space.
 *
 * Alignment: a sample's raw data starts 12 bytes into its record, 4 mod 8,
 * so 64-bit typed-array views cannot read it in place, and a sample may
 * straddle the end of the ring. Each sample is therefore copied, 32-bit
 * word by word, into an 8-byte aligned scratch buffer and handed over from
 * there, with typed views: the same handlers and view decoders as the
 * ring buffer reader's (records start 8-byte aligned) work unchanged.
 */
import { BpfError, Errno } from '../errors.js';
import { mapFd, pageSize, type Mapping } from '../ffi/sys.js';
import { ringViews, type RawRecordHandler, type RingViews } from '../ringbuf/raw.js';

/** perf_event_header.type of a sample. */
export const PERF_RECORD_SAMPLE = 9;
/** perf_event_header.type of a lost-samples record. */
export const PERF_RECORD_LOST = 2;
/** Byte offset of data_head in struct perf_event_mmap_page. */
export const DATA_HEAD_OFFSET = 1024;
/** Byte offset of data_tail in struct perf_event_mmap_page. */
export const DATA_TAIL_OFFSET = 1032;
/** Largest record: perf_event_header.size is a u16. */
const MAX_RECORD = 1 << 16;

/**
 * The memory of one perf ring: the metadata page viewed as 64-bit words
 * (data_head at index 128, data_tail at 129) and the data pages.
 */
export interface PerfRingMemory {
  readonly meta: BigInt64Array;
  readonly data: Buffer;
}

/** Lays the views over a mapping (or any buffer) of 1 + 2^n pages of `page` bytes. */
export function perfRingMemory(buffer: ArrayBuffer, page: number, dataBytes: number): PerfRingMemory {
  return {
    meta: new BigInt64Array(buffer, 0, page / 8),
    data: Buffer.from(buffer, page, dataBytes),
  };
}

const HEAD = DATA_HEAD_OFFSET / 8;
/** Little-endian host: perf_event_header's u16 size is the high half of its second 32-bit word (the low half on big-endian). */
const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const TAIL = DATA_TAIL_OFFSET / 8;

/** One scratch area per process: samples are copied there one at a time (JS is single-threaded). */
let scratch: { buf: Buffer; u32: Uint32Array; views: RingViews } | undefined;
function scratchArea(): { buf: Buffer; u32: Uint32Array; views: RingViews } {
  if (!scratch) {
    const buf = Buffer.from(new ArrayBuffer(MAX_RECORD));
    scratch = { buf, u32: new Uint32Array(buf.buffer, 0, MAX_RECORD / 4), views: ringViews(buf) };
  }
  return scratch;
}

/** Reads the records of one perf ring, in order, each once. */
export class PerfRingParser {
  /** Data bytes (a power of two). */
  readonly size: number;
  readonly #mask: number;
  readonly #meta: BigInt64Array;
  readonly #u32: Uint32Array;
  /** Samples handed out. */
  samples = 0;
  /** Sum of the `lost` fields of PERF_RECORD_LOST records. */
  lost = 0;
  /** Records of other types, skipped. */
  other = 0;
  /** Set (e.g. by a handler closing the reader) to make read() return after the current record. */
  halt = false;

  constructor(mem: PerfRingMemory) {
    const size = mem.data.length;
    if (size < 8 || (size & (size - 1)) !== 0) throw new RangeError(`perf ring of ${size} bytes: the data area must be a power of two`);
    this.size = size;
    this.#mask = size - 1;
    this.#meta = mem.meta;
    this.#u32 = new Uint32Array(mem.data.buffer, mem.data.byteOffset, size / 4);
  }

  /** Bytes written by the kernel and not consumed yet. */
  pending(): number {
    return Number(Atomics.load(this.#meta, HEAD) - Atomics.load(this.#meta, TAIL));
  }

  /**
   * Hands each sample from data_tail to data_head to `handler` (at most
   * `max`; LOST records add to `lost`), then publishes the new data_tail.
   * Returns how many samples it handed; stops early once `halt` is set
   * (it is not cleared here). A handler that throws stops the
   * read: its record counts as consumed, and the error propagates. A
   * record whose size is impossible (smaller than its header, or past
   * data_head) throws a BpfError (EIO) and leaves the ring where it was.
   */
  read(handler: RawRecordHandler, max: number, name = 'perf buffer'): number {
    const meta = this.#meta;
    const u32 = this.#u32;
    const mask = this.#mask;
    const head = Atomics.load(meta, HEAD);
    const tail0 = Atomics.load(meta, TAIL);
    const avail = Number(head - tail0);
    if (avail <= 0 || max < 1) return 0;
    const s = scratchArea();
    let off = Number(tail0 & BigInt(mask));
    let done = 0;
    let n = 0;
    try {
      while (done < avail && n < max && !this.halt) {
        const w = off >> 2;
        const type = u32[w];
        const size = LE ? u32[w + 1] >>> 16 : u32[w + 1] & 0xffff;
        if (size < 8 || (size & 7) !== 0 || done + size > avail) {
          throw new BpfError(`read ${name}`, Errno.EIO, `corrupt record at offset ${off}: size ${size}, ${avail - done} bytes left`);
        }
        if (type === PERF_RECORD_SAMPLE) {
          const len = u32[((off + 8) & mask) >> 2];
          if (len + 12 > size) throw new BpfError(`read ${name}`, Errno.EIO, `corrupt sample at offset ${off}: ${len} raw bytes in a record of ${size}`);
          const words = (len + 3) >> 2;
          const dst = s.u32;
          let src = (off + 12) & mask;
          for (let i = 0; i < words; i++) {
            dst[i] = u32[src >> 2];
            src = (src + 4) & mask;
          }
          done += size;
          off = (off + size) & mask;
          n++;
          handler(s.buf, 0, len, s.views);
        } else {
          if (type === PERF_RECORD_LOST) {
            const a = u32[((off + 16) & mask) >> 2];
            const b = u32[((off + 20) & mask) >> 2];
            this.lost += LE ? a + b * 4294967296 : b + a * 4294967296;
          } else {
            this.other++;
          }
          done += size;
          off = (off + size) & mask;
        }
      }
    } finally {
      this.samples += n;
      if (done > 0) Atomics.store(meta, TAIL, tail0 + BigInt(done));
    }
    return n;
  }
}

/** The mapped ring of one perf event fd. */
export class PerfRingMapping {
  readonly mem: PerfRingMemory;
  readonly #map: Mapping;

  private constructor(map: Mapping, mem: PerfRingMemory) {
    this.#map = map;
    this.mem = mem;
  }

  /**
   * mmaps 1 + `pages` pages of perf event `fd` read-write. Throws a BpfError
   * with the errno of a refused mmap (EPERM/ENOMEM above the
   * perf_event_mlock_kb limit for an unprivileged user).
   */
  static open(fd: number, pages: number, what: string): PerfRingMapping {
    const m = mapFd(fd, (pages + 1) * pageSize, 0, true);
    if ('errno' in m) throw new BpfError(`map ${what}`, m.errno);
    return new PerfRingMapping(m, perfRingMemory(m.buffer, pageSize, pages * pageSize));
  }

  /** Idempotent. */
  unmap(): void {
    this.#map.unmap();
  }
}

/**
 * The memory of a BPF_MAP_TYPE_RINGBUF as the kernel lays it out for a
 * user-space consumer, mapped the way libbpf maps it:
 *
 *   offset 0         one page, read-write: the consumer position (u64)
 *   offset pagesize  one page, read-only: the producer position (u64),
 *                    then the data pages, read-only and mapped twice in a
 *                    row, so a record that wraps past the end of the ring
 *                    reads as one contiguous run of bytes.
 *
 * Each record starts with an 8-byte header: u32 len, whose top bits are
 * BUSY (reserved, not committed yet) and DISCARD (skip it), and u32 pgoff
 * (for the kernel). Records are 8-byte aligned. Positions only grow; the
 * offset of a position in the ring is `pos & (size - 1)`.
 *
 * Positions and headers are read with Atomics.load (acquire on every
 * platform V8 supports) and the consumer position is published with
 * Atomics.store, as libbpf does with smp_load_acquire/smp_store_release.
 */
import { BpfError, Errno } from '../errors.js';
import { mapInfoByFd, MapType } from '../map.js';
import { mapFd, pageSize, type Mapping } from '../ffi/sys.js';

/** Header bit: the record is reserved but not yet submitted or discarded. */
export const BPF_RINGBUF_BUSY_BIT = 1 << 31;
/** Header bit: the producer discarded the record; the consumer skips it. */
export const BPF_RINGBUF_DISCARD_BIT = 1 << 30;
/** Size of a record's header. */
export const BPF_RINGBUF_HDR_SZ = 8;

/** The largest ring this reader maps (its offsets stay within 32-bit integers). */
export const MAX_RING_SIZE = 1 << 30;

/**
 * The mapped memory of one ring buffer map, with typed views over it. The
 * fd stays owned by the caller (the map's object); unmap() is idempotent,
 * and nothing may touch the views after it.
 */
export class RingMapping {
  /** Data size in bytes (the map's max_entries, a power of two). */
  readonly size: number;
  /** size - 1: a position's offset in the ring is `pos & mask`. */
  readonly mask: number;
  /** The map's name, for messages. */
  readonly name: string;
  /** The data pages, twice in a row (2 * size bytes). */
  readonly data: Buffer;
  /** The same bytes as 32-bit words, for atomic header reads (index = offset / 4). */
  readonly words: Int32Array;
  /** [0]: the consumer position (read-write page). */
  readonly consumerPos: BigInt64Array;
  /** [0]: the producer position (read-only page). */
  readonly producerPos: BigInt64Array;
  readonly #consumer: Mapping;
  readonly #producer: Mapping;

  private constructor(name: string, size: number, consumer: Mapping, producer: Mapping) {
    this.name = name;
    this.size = size;
    this.mask = size - 1;
    this.#consumer = consumer;
    this.#producer = producer;
    this.consumerPos = new BigInt64Array(consumer.buffer, 0, 1);
    this.producerPos = new BigInt64Array(producer.buffer, 0, 1);
    this.data = Buffer.from(producer.buffer, pageSize, 2 * size);
    this.words = new Int32Array(producer.buffer, pageSize, (2 * size) / 4);
  }

  /**
   * Maps the ring buffer map behind `fd`. Throws a BpfError: EINVAL when the
   * fd is not a BPF_MAP_TYPE_RINGBUF map, or the errno of a refused mmap.
   */
  static open(fd: number, name?: string): RingMapping {
    const info = mapInfoByFd(fd, name);
    const what = name ?? info.name;
    if (info.type !== MapType.RINGBUF) {
      throw new BpfError(`map ring buffer ${what}`, Errno.EINVAL, `its type is ${info.typeName}, not ringbuf`);
    }
    const size = info.maxEntries;
    if (size > MAX_RING_SIZE) throw new BpfError(`map ring buffer ${what}`, Errno.EINVAL, `${size} bytes: rings above 1 GiB are not supported`);
    const consumer = mapFd(fd, pageSize, 0, true);
    if ('errno' in consumer) throw new BpfError(`map consumer page of ring buffer ${what}`, consumer.errno);
    const producer = mapFd(fd, pageSize + 2 * size, pageSize, false);
    if ('errno' in producer) {
      consumer.unmap();
      throw new BpfError(`map data pages of ring buffer ${what}`, producer.errno);
    }
    return new RingMapping(what, size, consumer, producer);
  }

  /** Bytes between the consumer and producer positions (records ready or still being written). */
  pending(): number {
    return Number(Atomics.load(this.producerPos, 0) - Atomics.load(this.consumerPos, 0));
  }

  /** Unmaps both mappings. Idempotent. */
  unmap(): void {
    this.#producer.unmap();
    this.#consumer.unmap();
  }
}

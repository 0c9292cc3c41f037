/**
 * The four AF_XDP rings and their producer/consumer protocol.
 *
 * Each ring is a mapping of the socket at its page offset: a u32 producer
 * index, a u32 consumer index, a u32 flags word (need-wakeup) and an array
 * of `size` entries (a power of two), at the offsets getsockopt
 * (XDP_MMAP_OFFSETS) gives. Indices only grow (modulo 2^32); an index's slot
 * is `index & (size - 1)`. Fill and TX rings are produced by user space,
 * RX and completion rings by the kernel.
 *
 * Ordering, as libxdp does it: a producer writes its entries, then
 * publishes the producer index (store-release); a consumer reads the
 * producer index (load-acquire) before the entries, and publishes its
 * consumer index (store-release) after it is done with them. Indices go
 * through Atomics (sequentially consistent: stronger than needed, and only
 * once per batch); entries are plain typed-array accesses between them.
 * Both sides cache the other side's index and only reload it when the
 * cached value says the ring is empty (consumer) or full (producer).
 */

/** Entries in a ring from consumer index `cons` to producer index `prod` (u32 indices that wrap). */
export function ringAvailable(prod: number, cons: number): number {
  return (prod - cons) >>> 0;
}

/** Free slots in a ring of `size` entries with producer index `prod` and consumer index `cons`. */
export function ringFree(size: number, prod: number, cons: number): number {
  return size - ringAvailable(prod, cons);
}

/** True when `n` is a power of two >= 1. */
export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** Where a ring lives in its mapping (a struct xdp_ring_offset). */
export interface RingOffsets {
  producer: number;
  consumer: number;
  flags: number;
  desc: number;
}

/** Which ring: its entries are descriptors (rx, tx) or frame addresses (fill, completion). */
export type RingKind = 'fill' | 'completion' | 'rx' | 'tx';

/**
 * One mapped ring. The producer side (fill, tx) uses reserve/set/submit,
 * the consumer side (rx, completion) peek/get/release. Positions k passed
 * to the accessors are relative to the batch: 0 is the first entry
 * reserved (or peeked) by the last reserve() (peek()).
 *
 * Addresses are UMEM offsets below 2^32 (a UMEM is at most 4 GiB here),
 * written as the low word of the u64 with a zero high word.
 */
export class XskRing {
  readonly kind: RingKind;
  /** Entries (a power of two). */
  readonly size: number;
  readonly mask: number;
  /** Words per entry: 4 for descriptors, 2 for addresses. */
  readonly #words: number;
  /** [0] producer, read and written with Atomics. */
  readonly #prod: Uint32Array;
  readonly #cons: Uint32Array;
  readonly #flags: Uint32Array;
  /** The entries as u32 words. */
  readonly #ents: Uint32Array;
  /** Our own side's index (the producer's for fill/tx, the consumer's for rx/completion). */
  #local = 0;
  /** The other side's index as last read. */
  #cached = 0;

  constructor(kind: RingKind, buffer: ArrayBuffer, off: RingOffsets, size: number) {
    this.kind = kind;
    this.size = size;
    this.mask = size - 1;
    this.#words = kind === 'rx' || kind === 'tx' ? 4 : 2;
    this.#prod = new Uint32Array(buffer, off.producer, 1);
    this.#cons = new Uint32Array(buffer, off.consumer, 1);
    this.#flags = new Uint32Array(buffer, off.flags, 1);
    this.#ents = new Uint32Array(buffer, off.desc, size * this.#words);
    if (this.isProducer) {
      this.#local = Atomics.load(this.#prod, 0);
      this.#cached = Atomics.load(this.#cons, 0);
    } else {
      this.#local = Atomics.load(this.#cons, 0);
      this.#cached = Atomics.load(this.#prod, 0);
    }
  }

  /** True for the rings user space produces (fill, tx). */
  get isProducer(): boolean {
    return this.kind === 'fill' || this.kind === 'tx';
  }

  /** The flags word has XDP_RING_NEED_WAKEUP: the kernel waits for a kick (sendto for tx, recvfrom or poll for fill). */
  needsWakeup(): boolean {
    return (Atomics.load(this.#flags, 0) & 1) !== 0;
  }

  // ---- producer side (fill, tx) ----

  /** Free slots, reloading the consumer index only when the cached one says fewer than `want` are free. */
  free(want = this.size): number {
    let f = ringFree(this.size, this.#local, this.#cached);
    if (f < want) {
      this.#cached = Atomics.load(this.#cons, 0);
      f = ringFree(this.size, this.#local, this.#cached);
    }
    return f;
  }

  /** Reserves up to `max` slots: returns how many (0 when full). Fill them with setAddr/setDesc, then submit(n). */
  reserve(max: number): number {
    const n = Math.min(max, this.free(max));
    return n > 0 ? n : 0;
  }

  /** Fill/completion entry k of the reserved batch: a frame address. */
  setAddr(k: number, addr: number): void {
    const i = ((this.#local + k) & this.mask) * 2;
    this.#ents[i] = addr;
    this.#ents[i + 1] = 0;
  }

  /** RX/TX entry k of the reserved batch: a descriptor. */
  setDesc(k: number, addr: number, len: number): void {
    const i = ((this.#local + k) & this.mask) * 4;
    const e = this.#ents;
    e[i] = addr;
    e[i + 1] = 0;
    e[i + 2] = len;
    e[i + 3] = 0;
  }

  /** Publishes `n` entries written after reserve() (store-release of the producer index). */
  submit(n: number): void {
    this.#local = (this.#local + n) >>> 0;
    Atomics.store(this.#prod, 0, this.#local);
  }

  // ---- consumer side (rx, completion) ----

  /** Entries ready, reloading the producer index only when the cached one says fewer than `want` are there. */
  available(want = 1): number {
    let a = ringAvailable(this.#cached, this.#local);
    if (a < want) {
      this.#cached = Atomics.load(this.#prod, 0);
      a = ringAvailable(this.#cached, this.#local);
    }
    return a;
  }

  /** Up to `max` entries ready to read: returns how many. Read them with addr/len, then release(n). */
  peek(max: number): number {
    return Math.min(max, this.available(max));
  }

  /** The frame address of entry k of the peeked batch (a fill/completion address, or a descriptor's). */
  addr(k: number): number {
    return this.#ents[((this.#local + k) & this.mask) * this.#words];
  }

  /** The packet length of descriptor k of the peeked batch (rx, tx). */
  len(k: number): number {
    return this.#ents[((this.#local + k) & this.mask) * 4 + 2];
  }

  /** Gives `n` peeked entries back to the kernel (store-release of the consumer index). */
  release(n: number): void {
    this.#local = (this.#local + n) >>> 0;
    Atomics.store(this.#cons, 0, this.#local);
  }

  /** The indices as the kernel sees them now: {producer, consumer}. */
  indices(): { producer: number; consumer: number } {
    return { producer: Atomics.load(this.#prod, 0), consumer: Atomics.load(this.#cons, 0) };
  }
}

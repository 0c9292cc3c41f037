/**
 * A UMEM: the memory an AF_XDP socket shares with the kernel, cut into
 * equal frames. Packets live in frames; rings only pass frame addresses
 * (offsets into the UMEM). User space keeps the addresses of the frames it
 * owns (not lent to the kernel through the fill or TX ring) on a stack.
 */
import { BpfError, Errno } from '../errors.js';
import { mapAnonymous, type AnonMapping } from '../ffi/xsk.js';
import { isPowerOfTwo } from './ring.js';

/** How to cut the UMEM. */
export interface UmemOptions {
  /** Frames (default 4096). */
  frameCount?: number;
  /** Bytes per frame: a power of two from 2048 to the page size (default 4096). */
  frameSize?: number;
  /** Extra headroom the kernel leaves before each received packet, on top of XDP_PACKET_HEADROOM in copy mode (default 0). */
  headroom?: number;
}

/**
 * The frames of a UMEM and the stack of frames user space owns. Created by
 * an XskSocket, which registers it. Throws a BpfError: EINVAL for a bad
 * geometry, the errno of a refused mmap.
 */
export class Umem {
  readonly frameCount: number;
  readonly frameSize: number;
  readonly headroom: number;
  /** The frames' bytes (valid until close). */
  readonly buffer: Buffer;
  /** Native address of the memory (for XDP_UMEM_REG). */
  readonly addr: bigint;
  readonly #map: AnonMapping;
  readonly #free: Uint32Array;
  #freeCount: number;

  constructor(opts: UmemOptions = {}) {
    const frameCount = opts.frameCount ?? 4096;
    const frameSize = opts.frameSize ?? 4096;
    const headroom = opts.headroom ?? 0;
    if (!isPowerOfTwo(frameSize) || frameSize < 2048 || frameSize > 65536) {
      throw new BpfError('create UMEM', Errno.EINVAL, `frame size ${frameSize} is not a power of two from 2048`);
    }
    if (!Number.isInteger(frameCount) || frameCount < 1 || frameCount * frameSize > 2 ** 32 - frameSize) {
      throw new BpfError('create UMEM', Errno.EINVAL, `${frameCount} frames of ${frameSize} bytes: at most 4 GiB`);
    }
    const m = mapAnonymous(frameCount * frameSize);
    if ('errno' in m) throw new BpfError(`map UMEM of ${frameCount * frameSize} bytes`, m.errno);
    this.#map = m;
    this.frameCount = frameCount;
    this.frameSize = frameSize;
    this.headroom = headroom;
    this.addr = m.addr;
    this.buffer = Buffer.from(m.buffer);
    this.#free = new Uint32Array(frameCount);
    for (let i = 0; i < frameCount; i++) this.#free[i] = (frameCount - 1 - i) * frameSize;
    this.#freeCount = frameCount;
  }

  /** Bytes of memory. */
  get length(): number {
    return this.#map.length;
  }

  /** Frames user space owns now. */
  get freeFrames(): number {
    return this.#freeCount;
  }

  /** Takes a frame user space owns: its address, or -1 when none is left. */
  allocFrame(): number {
    return this.#freeCount > 0 ? this.#free[--this.#freeCount] : -1;
  }

  /** Gives a frame back to user space's stack (any address inside it). */
  freeFrame(addr: number): void {
    this.#free[this.#freeCount++] = this.frameBase(addr);
  }

  /** The start of the frame holding `addr` (RX descriptors point XDP_PACKET_HEADROOM + headroom into it). */
  frameBase(addr: number): number {
    return addr - (addr % this.frameSize);
  }

  /** Unmaps the memory. Idempotent; no view of `buffer` may be used after. */
  close(): void {
    this.#map.unmap();
  }
}

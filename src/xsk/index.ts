/**
 * AF_XDP from TypeScript: a UMEM, the four rings, a socket per queue.
 *
 *   const sock = XskSocket.open({ ifindex, queue: 0, mode: 'auto' });
 *   sock.setInMap(obj.map('xsks', u32, u32));
 *   sock.refill();
 *   sock.watch(() => { const n = sock.rx!.peek(64); ...; sock.rx!.release(n); });
 */
export { XskRing, ringAvailable, ringFree, isPowerOfTwo, type RingKind, type RingOffsets } from './ring.js';
export { Umem, type UmemOptions } from './umem.js';
export {
  XskSocket, parseStatistics, type XskOptions, type XskMode, type XskBoundMode, type XskStatistics, type XskMapLike,
} from './socket.js';
export { XDP_PACKET_HEADROOM } from '../ffi/xsk.js';

/**
 * Keeps the data plane's forwarding cache honest: each connection entry
 * caches its egress interface, MACs and MTU, refreshed every
 * fib_refresh_ns or when lb_globals.fib_generation moves. This bumps the
 * generation on every (coalesced) burst of IPv4 route or neighbour changes
 * in the calling thread's network namespace, so the next packet of every
 * flow looks its forwarding up again.
 */
import type { BpfMap } from '../map.js';
import { RouteWatcher, type RtChange } from '../net/rtwatch.js';
import { bumpFibGeneration, type LbGlobals } from './dataplane.js';

/**
 * Watches routes and neighbours and bumps `globals`' fib_generation on each
 * burst (at most every `coalesceMs`, default 50 ms); `onBump` gets the new
 * generation and what changed. Returns the watcher (close() it to stop;
 * safe twice). Throws a BpfError when the netlink socket cannot be opened;
 * a failed bump or read is handed to `onError` (the watch goes on after a
 * failed bump, stops after a failed read).
 */
export function refreshForwardingOnChange(
  globals: BpfMap<number, LbGlobals>,
  onBump: (generation: number, change: RtChange) => void,
  onError: (e: Error) => void,
  coalesceMs = 50,
): RouteWatcher {
  return RouteWatcher.open((change) => {
    let g: number;
    try { g = bumpFibGeneration(globals); } catch (e) { onError(e as Error); return; }
    onBump(g, change);
  }, { coalesceMs, onError });
}

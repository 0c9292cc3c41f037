/**
 * The XDP side of the xdp_sock figures: bpf/bench/xsk_redirect.bpf.c (UDP to
 * `port` redirected to the XSKMAP entry of the packet's RX queue, the rest
 * passed) attached natively to an interface, its XSKMAP pinned at `pin` so
 * that a receiver in another process (bench/c/xsk_ref.c, bench/xsk_ts.ts)
 * puts its socket in it: both implementations behind the same program.
 */
import { rmSync } from 'node:fs';
import { BpfObject, u32 } from '../src/index.js';
import { ensureObject } from '../src/cli/build.js';

/** The attached program; close() detaches it, unpins the map and closes the object. */
export interface Redirect { close(): void }

/** Loads (the port set as a constant), attaches natively and pins the XSKMAP. Throws a BpfError (load, attach, pin). */
export function attachRedirect(ifindex: number, port: number, pin: string): Redirect {
  const obj = BpfObject.open(ensureObject('bench', 'xsk_redirect'));
  try {
    obj.setConst('port', port);
    obj.load();
    obj.map('xsks', u32, u32).pin(pin);
    try {
      const link = obj.program('xsk_redirect').attachXdp(ifindex, { mode: 'native' });
      return {
        close() {
          link.detach();
          rmSync(pin, { force: true });
          obj.close();
        },
      };
    } catch (e) {
      rmSync(pin, { force: true });
      throw e;
    }
  } catch (e) {
    obj.close();
    throw e;
  }
}

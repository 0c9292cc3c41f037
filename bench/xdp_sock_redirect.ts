/**
 * The XDP side of the xdp_sock figures: the lesson's program
 * (bpf/xdp_sock/xdp_sock.bpf.c: UDP to the configured port redirected to the
 * XSKMAP slot of the packet's RX queue, the rest passed) attached natively
 * to an interface, its XSKMAP pinned at `pin` so that a receiver in another
 * process (bench/c/xsk_ref.c, bench/xsk_ts.ts) puts its socket in it: both
 * implementations behind the same program.
 */
import { rmSync } from 'node:fs';
import { BpfObject } from '../src/index.js';
import { ensureObject } from '../src/cli/build.js';
import { setPort, xsksMap } from '../src/lessons/xdp_sock.js';

/** The attached program; close() detaches it, unpins the map and closes the object. */
export interface Redirect { close(): void }

/** Loads, sets the port, attaches natively and pins the XSKMAP. Throws a BpfError (load, attach, pin). */
export function attachRedirect(ifindex: number, port: number, pin: string): Redirect {
  const obj = BpfObject.load(ensureObject('xdp_sock'));
  try {
    setPort(obj, port);
    xsksMap(obj).pin(pin);
    try {
      const link = obj.program('xdp_sock').attachXdp(ifindex, { mode: 'native' });
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

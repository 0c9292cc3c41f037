/**
 * The XDP side of the xdp_sock figures: the lesson's program (UDP to `port`
 * redirected to the XSKMAP entry of the packet's RX queue) attached natively
 * to an interface, its XSKMAP pinned at `pin` so that a receiver in another
 * process (bench/c/xsk_ref.c, bench/xsk_ts.ts) can put its socket in it.
 */
import { rmSync } from 'node:fs';
import { BpfObject, u32 } from '../src/index.js';

const BPF_MAP_TYPE_XSKMAP = 17;

/** The attached program; close() detaches it, unpins the map and closes the object. */
export interface Redirect { close(): void }

/** Loads, configures, attaches and pins. Throws a BpfError (load, attach, pin). */
export function attachRedirect(ifindex: number, port: number, pin: string): Redirect {
  const obj = BpfObject.load(process.env.XSKB_OBJ ?? '/tmp/xskb/redir.bpf.o');
  try {
    void port;
    const xsk = obj.maps.find((m) => m.type === BPF_MAP_TYPE_XSKMAP);
    if (!xsk) throw new Error('find the XSKMAP: the object has none');
    const map = obj.map(xsk.name, u32, u32);
    map.pin(pin);
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

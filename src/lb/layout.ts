/**
 * The load balancer's maps as the data plane sees them: the structs of
 * bpf/xdp_dnat/xdp_dnat.h (the contract in LB_CONTRACT.md), byte for byte,
 * as codec.ts struct() codecs, and the maps' names.
 *
 *   service_map   HASH         service_key → service_info (id, backend_count)
 *   backend_map   ARRAY        backend id → backend (ip, port, flags, service_id, weight)
 *   maglev_map    ARRAY        service id → maglev_table (LB_MAGLEV_SIZE backend ids)
 *   service_hits  PERCPU_ARRAY service id → service_counter (packets, bytes)
 *   lb_globals    ARRAY        0 → lb_globals (fib_generation, epoch): with the data
 *                              plane only; every write above changes the epoch
 */
import { struct, u32, type Codec, type StructCodec } from '../codec.js';
import { BpfMap, MapType, PerCpuMap } from '../map.js';

/** Slots in one service's Maglev table (a prime; LB_MAGLEV_SIZE in the C header). */
export const LB_MAGLEV_SIZE = 1021;
/** Backends one service may have (LB_MAX_BACKENDS in the C header). */
export const LB_MAX_BACKENDS = 256;
/** struct backend's flags: the slot is in use. A removed backend's slot is all zeros. */
export const BACKEND_F_ACTIVE = 1;

/** Map names in the object (and file names under a pin directory). */
export const LB_MAPS = { services: 'service_map', backends: 'backend_map', maglev: 'maglev_map', hits: 'service_hits' } as const;
/** The data plane's globals map (generation and epoch), next to the four when the data plane is there. */
export const LB_GLOBALS_MAP = 'lb_globals';

/** Default max_entries of service_map, maglev_map and service_hits (the loader's --max-services). */
export const LB_DEFAULT_MAX_SERVICES = 1024;
/** Default max_entries of backend_map (the loader's --max-backends); id 0 is never used. */
export const LB_DEFAULT_MAX_BACKENDS = 4096;

/** struct service_key: VIP and port in network order, protocol number, zero pad (8 bytes). */
export const serviceKeyStruct = struct('service_key', { vip: 'be32', port: 'be16', proto: 'u8', pad: { pad: 1 } });
/** struct service_info: the service's id (index into maglev_map and service_hits) and how many backends take new flows. */
export const serviceInfoStruct = struct('service_info', { id: 'u32', backend_count: 'u32' });
/**
 * struct backend: address and port in network order, flags (BACKEND_F_ACTIVE),
 * and two fields only the user side reads: the owning service's id and the
 * weight (0-65535; 0 = drained), so a restarted table can rebuild its state.
 */
export const backendStruct = struct('backend', { ip: 'be32', port: 'be16', flags: 'u16', service_id: 'u32', weight: 'u32' });
/** struct service_counter: hits of one service on one CPU. */
export const serviceCounterStruct = struct('service_counter', { packets: 'u64', bytes: 'u64' });

/**
 * struct lb_globals: slot 0 of lb_globals. fib_generation: bumped when
 * routes or neighbours changed; epoch: changed after every write the data
 * plane's flow cache must not outlive (a cached flow's next packet then
 * takes the full path: conntrack, backend check).
 */
export const lbGlobalsStruct = struct('lb_globals', { fib_generation: 'u32', epoch: 'u32' });
/** lb_globals[0]. */
export type LbGlobals = { fib_generation: number; epoch: number };

/**
 * Changes lb_globals' epoch (and, with `fib`, bumps fib_generation too):
 * every flow cached by the data plane takes its full path on its next
 * packet. Call it after the map writes it must make visible. The new epoch
 * is random and never the current one, so two processes bumping at once
 * cannot both land on one value a slot was filled under. Returns what was
 * written. Throws a BpfError.
 */
export function bumpEpoch(globals: BpfMap<number, LbGlobals>, fib = false): LbGlobals {
  const g = globals.get(0) ?? { fib_generation: 0, epoch: 0 };
  const next = {
    fib_generation: fib ? (g.fib_generation + 1) >>> 0 : g.fib_generation,
    epoch: (g.epoch + 1 + Math.floor(Math.random() * 0xfffffffe)) >>> 0,
  };
  globals.set(0, next);
  return next;
}

/** A raw service_key: numbers as the kernel stores them (vip as parseIpv4 gives it, proto 6/17). */
export type RawServiceKey = { vip: number; port: number; proto: number };
/** A raw service_info. */
export type RawServiceInfo = { id: number; backend_count: number };
/** A raw struct backend. */
export type RawBackend = { ip: number; port: number; flags: number; service_id: number; weight: number };
/** A raw service_counter. */
export type RawCounter = { packets: number; bytes: number };

/**
 * struct maglev_table { __u32 backend_id[size]; } as a Uint32Array (host
 * order, as __u32). Encoding copies the array's bytes; throws a RangeError
 * when its length is not `size`.
 */
export function maglevTableCodec(size = LB_MAGLEV_SIZE): Codec<Uint32Array> {
  const bytes = 4 * size;
  return {
    size: bytes,
    encode(v, buf, off = 0) {
      if (!(v instanceof Uint32Array) || v.length !== size) throw new RangeError(`maglev_table: expected ${size} backend ids, got ${(v as { length?: number })?.length}`);
      buf.set(new Uint8Array(v.buffer, v.byteOffset, bytes), off);
    },
    decode(buf, off = 0) {
      const out = new Uint32Array(size);
      new Uint8Array(out.buffer).set(buf.subarray(off, off + bytes));
      return out;
    },
  };
}

/** The contract's structs, for test/layouts.test.ts (to be listed in the xdp_dnat lesson's sharedLayouts once its header has them). */
export const lbSharedLayouts: Array<{ object: string; cName: string; codec: StructCodec<unknown> }> = [
  { object: 'xdp_dnat', cName: 'service_key', codec: serviceKeyStruct },
  { object: 'xdp_dnat', cName: 'service_info', codec: serviceInfoStruct },
  { object: 'xdp_dnat', cName: 'backend', codec: backendStruct },
  { object: 'xdp_dnat', cName: 'service_counter', codec: serviceCounterStruct },
];

/**
 * The four maps of the contract, typed (what ServiceTable writes), and the
 * data plane's lb_globals when there is one: the table changes its epoch
 * after every write, so the data plane's flow cache forgets.
 */
export interface LbMaps {
  services: BpfMap<RawServiceKey, RawServiceInfo>;
  backends: BpfMap<number, RawBackend>;
  maglev: BpfMap<number, Uint32Array>;
  hits: PerCpuMap<number, RawCounter>;
  globals?: BpfMap<number, LbGlobals>;
}

/**
 * Creates the four maps standalone, as the contract declares them (for a
 * control plane tested without the data plane, and for benchmarks):
 * service_map HASH of `maxServices`, backend_map ARRAY of `maxBackends`
 * (id 0 unused), maglev_map ARRAY of `maxServices` tables of `maglevSize`
 * slots, service_hits PERCPU_ARRAY of `maxServices`. The caller closes
 * them (closeLbMaps). Throws a BpfError (EPERM without CAP_BPF, ENOMEM).
 */
export function createLbMaps(opts: { maxServices?: number; maxBackends?: number; maglevSize?: number } = {}): LbMaps {
  const maxServices = opts.maxServices ?? LB_DEFAULT_MAX_SERVICES;
  const maxBackends = opts.maxBackends ?? LB_DEFAULT_MAX_BACKENDS;
  const made: Array<{ close(): void }> = [];
  const keep = <M extends { close(): void }>(m: M): M => { made.push(m); return m; };
  try {
    return {
      services: keep(BpfMap.create({ type: MapType.HASH, name: LB_MAPS.services, maxEntries: maxServices }, serviceKeyStruct, serviceInfoStruct)),
      backends: keep(BpfMap.create({ type: MapType.ARRAY, name: LB_MAPS.backends, maxEntries: maxBackends }, u32, backendStruct)),
      maglev: keep(BpfMap.create({ type: MapType.ARRAY, name: LB_MAPS.maglev, maxEntries: maxServices }, u32, maglevTableCodec(opts.maglevSize ?? LB_MAGLEV_SIZE))),
      hits: keep(PerCpuMap.create({ type: MapType.PERCPU_ARRAY, name: LB_MAPS.hits, maxEntries: maxServices }, u32, serviceCounterStruct)),
    };
  } catch (e) {
    for (const m of made) m.close();
    throw e;
  }
}

/** Closes the maps (lb_globals too, when there). Safe to call twice. */
export function closeLbMaps(maps: LbMaps): void {
  maps.services.close();
  maps.backends.close();
  maps.maglev.close();
  maps.hits.close();
  maps.globals?.close();
}

/**
 * ServiceTable: the load balancer's services in its four maps (see
 * layout.ts), kept in step with a desired state.
 *
 * A control plane calls apply() with the whole desired state on every
 * change; the table works out the difference against what it holds and
 * writes only that, with batch operations, in an order that never lets the
 * data plane see a Maglev table pointing at a backend that is not active:
 *
 *   1. backend_map: new backends, and backends whose weight changed
 *   2. service_hits: zeroed for new services
 *   3. maglev_map: the tables of services whose live backends (weight > 0)
 *      or weights changed, and nothing else
 *   4. service_map: new services, and services whose backend count changed
 *   5. service_map: removed services deleted
 *   6. backend_map: removed backends zeroed
 *
 * Ids: a service id (index into maglev_map and service_hits) and a backend
 * id (index into backend_map, never 0) are the lowest free ones, and an id
 * freed by a removal is reused only by a later call (after the removal has
 * been written). A backend id belongs to one (service, ip:port) pair.
 *
 * One writer: the state lives in memory between calls; another process
 * writing the same maps makes it stale until refresh().
 *
 * Adoption: the constructor reads the maps and rebuilds the state from
 * them (struct backend carries its service id and weight), so a restarted
 * loader that adopts pinned maps keeps every id. Backends left active by a
 * call that died half way (their service gone or never written) are zeroed
 * by the next write.
 *
 * Speed: a service equal to what the table holds, given in the same order
 * as last time, is recognised by comparing its fields (no parsing, no
 * string building), so a full snapshot of 10,000 services costs about a
 * millisecond when nothing changed; only changed services are parsed,
 * validated and rebuilt, and the batches are encoded in place.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { formatIpv4, u32 } from '../codec.js';
import { BpfError, Errno } from '../errors.js';
import { BpfMap, PerCpuMap, possibleCpus, type MapInfoView } from '../map.js';
import type { BpfObject } from '../object.js';
import {
  BACKEND_F_ACTIVE, LB_GLOBALS_MAP, LB_MAGLEV_SIZE, LB_MAPS, backendStruct, bumpEpoch, closeLbMaps, lbGlobalsStruct, maglevTableCodec, serviceCounterStruct, serviceInfoStruct, serviceKeyStruct,
  type LbMaps, type RawBackend, type RawServiceInfo, type RawServiceKey,
} from './layout.js';
import { buildMaglev, isPrime, type MaglevBackend } from './maglev.js';
import { openPinnedFlowCache, readFlowCachePending, type FlowCacheSlot } from './dataplane.js';
import {
  checkIp, checkPort, checkProto, checkService, protoOf, type ParsedService, type Service, type ServiceAddr, type ServiceProto,
} from './model.js';

export type { LbMaps } from './layout.js';

/** A backend as list() shows it. */
export interface BackendEntry {
  ip: string;
  port: number;
  weight: number;
  /** Its id in backend_map. */
  id: number;
  /** Slots of its service's Maglev table it holds (read from maglev_map). */
  slots: number;
  /** slots / table size: the share of the service's new flows it gets. */
  share: number;
}
/** A service as list() shows it. */
export interface ServiceEntry extends ServiceAddr {
  /** Its id in maglev_map and service_hits. */
  id: number;
  backends: BackendEntry[];
  /** Packets and bytes of the service, summed over CPUs. */
  packets: number;
  bytes: number;
}

/** What a write changed (for logging). */
export interface ApplyResult {
  servicesAdded: number;
  servicesChanged: number;
  servicesRemoved: number;
  servicesUnchanged: number;
  backendsAdded: number;
  /** Existing backends whose weight changed. */
  backendsChanged: number;
  /** Zeroed in backend_map (removed, or left over by an interrupted write). */
  backendsRemoved: number;
  /** Maglev tables written. */
  maglevWritten: number;
}

/** How a single-service write treats existing services: add (must be new), change (must exist), set (either). */
export type WriteMode = 'add' | 'change' | 'set';

interface BackendState { id: number; key: string; ipText: string; ip: number; port: number; weight: number }
interface SvcState {
  key: string; id: number; vip: number; port: number; proto: number; vipText: string; protoText: ServiceProto;
  /** By "ip:port" (canonical). */
  backends: Map<string, BackendState>;
  /** Backends with weight > 0 (service_info.backend_count). */
  live: number;
  /** The service as last given (fields copied), for the cheap comparison; undefined after adoption. */
  given?: Given;
  mark: number;
}
interface Given { vip: string; port: number; proto: string; ips: string[]; ports: number[]; weights: Array<number | undefined> }

/** Maglev tables built and written per batch (256 x 4 KiB). */
const MAGLEV_CHUNK = 256;

function givenOf(s: Service): Given {
  const n = s.backends.length;
  const g: Given = { vip: s.vip, port: s.port, proto: s.proto, ips: new Array<string>(n), ports: new Array<number>(n), weights: new Array<number | undefined>(n) };
  for (let j = 0; j < n; j++) {
    const b = s.backends[j];
    g.ips[j] = b.ip;
    g.ports[j] = b.port;
    g.weights[j] = b.weight;
  }
  return g;
}

/** True when `s` has exactly the fields of `g`, backends in the same order. Reads only; never throws on odd input. */
function sameAsGiven(s: Service, g: Given): boolean {
  if (s.vip !== g.vip || s.port !== g.port || s.proto !== g.proto) return false;
  const bs = s.backends;
  if (!Array.isArray(bs) || bs.length !== g.ips.length) return false;
  for (let j = 0; j < bs.length; j++) {
    const b = bs[j];
    if (b === null || typeof b !== 'object' || b.ip !== g.ips[j] || b.port !== g.ports[j] || b.weight !== g.weights[j]) return false;
  }
  return true;
}

/**
 * The services of one load balancer in service_map, backend_map, maglev_map
 * and service_hits. Needs the maps of the contract (bpf/xdp_dnat/xdp_dnat.h);
 * any kernel with BPF_MAP_*_BATCH (5.6+) for the batch writes.
 */
export class ServiceTable {
  readonly #maps: LbMaps;
  /** The data plane's flow cache, when known: list() adds the hits still pending in its slots. */
  readonly #flowCache?: BpfMap<number, FlowCacheSlot>;
  readonly #size: number;
  readonly #maxServices: number;
  #state = new Map<string, SvcState>();
  #usedServiceIds: Uint8Array;
  #usedBackendIds: Uint8Array;
  /** How many services have each VIP, how many backends each address: for the "a backend is not a VIP" check. */
  #vipRefs = new Map<number, number>();
  #ipRefs = new Map<number, number>();
  /** Active backend ids that belong to no service (an interrupted write): zeroed by the next write. */
  #orphans: number[] = [];
  /** The services of the last apply() in its order: where the cheap comparison looks first. */
  #lastOrder: SvcState[] = [];
  #gen = 0;
  /** Where the maps are pinned, when opened from a pin directory. */
  readonly pinDir?: string;
  readonly #owned: boolean;

  /**
   * Opens the table on `maps` and reads them to rebuild its state. With
   * `owned`, close() closes the maps. Throws a BpfError (EINVAL: maps that
   * contradict each other or the contract; a read error), a TypeError (a
   * maglev_map whose value is not a prime number of u32 slots).
   */
  constructor(maps: LbMaps & { flowCache?: BpfMap<number, FlowCacheSlot> }, opts: { owned?: boolean; pinDir?: string } = {}) {
    this.#maps = maps;
    this.#flowCache = maps.flowCache;
    this.#owned = opts.owned ?? false;
    this.pinDir = opts.pinDir;
    this.#size = maps.maglev.valueSize / 4;
    if (!Number.isInteger(this.#size) || !isPrime(this.#size)) throw new TypeError(`map ${maps.maglev.name}: value of ${maps.maglev.valueSize} bytes is not a prime number of backend ids`);
    this.#maxServices = Math.min(maps.maglev.maxEntries, maps.hits.maxEntries);
    this.#usedServiceIds = new Uint8Array(this.#maxServices);
    this.#usedBackendIds = new Uint8Array(maps.backends.maxEntries);
    this.#load();
  }

  /** The table on the maps of a loaded xdp_dnat object (closed with the object). Throws as the constructor. */
  static fromObject(obj: BpfObject, size = LB_MAGLEV_SIZE): ServiceTable {
    return new ServiceTable({
      services: obj.map(LB_MAPS.services, serviceKeyStruct, serviceInfoStruct),
      backends: obj.map(LB_MAPS.backends, u32, backendStruct),
      maglev: obj.map(LB_MAPS.maglev, u32, maglevTableCodec(size)),
      hits: obj.perCpuMap(LB_MAPS.hits, u32, serviceCounterStruct),
      globals: obj.map(LB_GLOBALS_MAP, u32, lbGlobalsStruct),
    });
  }

  /**
   * Opens the four maps pinned in `dir` (file names as LB_MAPS), and
   * lb_globals when it is there (a data plane's pins), and adopts them. Throws a BpfError (ENOENT when one is not pinned there) or as
   * the constructor.
   */
  static openPinned(dir: string, size = LB_MAGLEV_SIZE): ServiceTable {
    const opened: Array<{ close(): void }> = [];
    const keep = <M extends { close(): void }>(m: M): M => { opened.push(m); return m; };
    try {
      const maps: LbMaps & { flowCache?: BpfMap<number, FlowCacheSlot> } = {
        services: keep(BpfMap.openPinned(join(dir, LB_MAPS.services), serviceKeyStruct, serviceInfoStruct)),
        backends: keep(BpfMap.openPinned(join(dir, LB_MAPS.backends), u32, backendStruct)),
        maglev: keep(BpfMap.openPinned(join(dir, LB_MAPS.maglev), u32, maglevTableCodec(size))),
        hits: keep(PerCpuMap.openPinned(join(dir, LB_MAPS.hits), u32, serviceCounterStruct)),
        globals: existsSync(join(dir, LB_GLOBALS_MAP)) ? keep(BpfMap.openPinned(join(dir, LB_GLOBALS_MAP), u32, lbGlobalsStruct)) : undefined,
        flowCache: openPinnedFlowCache(dir, (m) => keep(m())),
      };
      return new ServiceTable(maps, { owned: true, pinDir: dir });
    } catch (e) {
      for (const m of opened) m.close();
      throw e;
    }
  }

  /** Slots in each Maglev table. */
  get maglevSize(): number {
    return this.#size;
  }

  /** How many services the maps can hold (maglev_map's and service_hits' entries). */
  get maxServices(): number {
    return this.#maxServices;
  }

  /** How many backends backend_map can hold (its entries less id 0). */
  get maxBackends(): number {
    return this.#usedBackendIds.length - 1;
  }

  /** Number of services. */
  get size(): number {
    return this.#state.size;
  }

  /**
   * Reads the maps again and rebuilds the state from them. The table keeps
   * its state in memory between calls (that is what makes a full-snapshot
   * apply cheap), so it assumes it is the maps' only writer: call this
   * before reading or writing when another process (scripts/services.ts,
   * a second control plane) may have written since. Throws as the
   * constructor.
   */
  refresh(): void {
    this.#load();
  }

  /** Reads the maps and rebuilds the state (ids, backends, weights). */
  #load(): void {
    const op = 'adopt load balancer maps';
    this.#state.clear();
    this.#vipRefs.clear();
    this.#ipRefs.clear();
    this.#lastOrder = [];
    this.#usedServiceIds.fill(0);
    this.#usedBackendIds.fill(0);
    this.#usedBackendIds[0] = 1;
    this.#orphans = [];
    const byId = new Map<number, SvcState>();
    for (const [k, info] of this.#maps.services.readAll().entries) {
      let protoText: ServiceProto;
      try { protoText = protoOf(k.proto); } catch { throw new BpfError(op, Errno.EINVAL, `${LB_MAPS.services} has a service of protocol ${k.proto}`); }
      const vipText = formatIpv4(k.vip);
      const key = `${vipText}:${k.port}/${protoText}`;
      if (info.id >= this.#maxServices) throw new BpfError(op, Errno.EINVAL, `service ${key} has id ${info.id}, beyond the ${this.#maxServices} Maglev tables`);
      const other = byId.get(info.id);
      if (other) throw new BpfError(op, Errno.EINVAL, `services ${other.key} and ${key} both have id ${info.id}`);
      const st: SvcState = { key, id: info.id, vip: k.vip, port: k.port, proto: k.proto, vipText, protoText, backends: new Map(), live: 0, mark: 0 };
      byId.set(info.id, st);
      this.#state.set(key, st);
      this.#usedServiceIds[info.id] = 1;
      this.#vipRefs.set(k.vip, (this.#vipRefs.get(k.vip) ?? 0) + 1);
    }
    // backend_map is an array: every slot comes back; only active ones are decoded.
    const m = this.#maps.backends;
    const flagsAt = backendStruct.layout.fields.find((f) => f.name === 'flags')!.offset;
    m.lookupBatchRaw((keys, values, count) => {
      for (let i = 0; i < count; i++) {
        const off = i * m.valueSize;
        if (values[off + flagsAt] === 0 && values[off + flagsAt + 1] === 0) continue;
        const b = backendStruct.decode(values, off);
        const id = u32.decode(keys, i * 4);
        if (!(b.flags & BACKEND_F_ACTIVE) || id === 0 || id >= this.#usedBackendIds.length) continue;
        this.#usedBackendIds[id] = 1;
        const st = byId.get(b.service_id);
        const ipText = formatIpv4(b.ip);
        const bkey = `${ipText}:${b.port}`;
        if (!st || st.backends.has(bkey)) { this.#orphans.push(id); continue; }
        st.backends.set(bkey, { id, key: bkey, ipText, ip: b.ip, port: b.port, weight: Math.min(b.weight, 65535) });
        if (b.weight > 0) st.live++;
        this.#ipRefs.set(b.ip, (this.#ipRefs.get(b.ip) ?? 0) + 1);
      }
    });
  }

  /**
   * Makes the maps hold exactly `desired` (a full snapshot: services not in
   * it are removed), writing only the difference (see the module comment
   * for the order). Services and backends may be listed in any order; a
   * service equal to what the table holds costs a few comparisons and no
   * write.
   *
   * Throws, before writing anything: a TypeError/RangeError for a malformed
   * service (model.ts's checkService), a BpfError EINVAL for a service
   * listed twice or a backend that is a VIP, E2BIG when the maps cannot hold
   * the result (service ids, backend ids, or service_map's entries while old
   * and new services coexist during the write). A kernel error while writing
   * is thrown as a BpfError after the table re-reads the maps (the data plane
   * is consistent at every step; the next apply completes the change).
   */
  apply(desired: readonly Service[]): ApplyResult {
    if (!Array.isArray(desired)) throw new TypeError('apply: expected a list of services');
    const op = `apply ${desired.length} service${desired.length === 1 ? '' : 's'}`;
    const gen = ++this.#gen;
    const last = this.#lastOrder;
    const order: Array<SvcState | ParsedService> = new Array(desired.length);
    const upserts: ParsedService[] = [];
    let unchanged = 0;
    for (let i = 0; i < desired.length; i++) {
      const s = desired[i];
      let st: SvcState | undefined = last[i];
      // The service at this place last time, if it is still the table's (a write() or remove() since may have replaced it).
      if (!(st?.given && st.mark !== gen && this.#state.get(st.key) === st && sameAsGiven(s, st.given))) {
        st = s && typeof s === 'object' ? this.#state.get(`${s.vip}:${s.port}/${s.proto}`) : undefined;
        if (!(st?.given && sameAsGiven(s, st.given))) st = undefined;
      }
      if (st) {
        if (st.mark === gen) throw new BpfError(op, Errno.EINVAL, `service ${st.key} is listed twice`);
        st.mark = gen;
        unchanged++;
        order[i] = st;
        continue;
      }
      const p = checkService(s);
      const cur = this.#state.get(p.key);
      if (cur) {
        if (cur.mark === gen) throw new BpfError(op, Errno.EINVAL, `service ${p.key} is listed twice`);
        cur.mark = gen;
      }
      upserts.push(p);
      order[i] = p;
    }
    // Two new services with the same key (a changed one was caught by its mark).
    const seen = new Set<string>();
    for (const p of upserts) {
      if (this.#state.has(p.key)) continue;
      if (seen.has(p.key)) throw new BpfError(op, Errno.EINVAL, `service ${p.key} is listed twice`);
      seen.add(p.key);
    }
    const removes: SvcState[] = [];
    for (const st of this.#state.values()) if (st.mark !== gen) removes.push(st);
    const changed = upserts.filter((p) => !this.#equalsState(p));
    const r = this.#commit(op, changed, removes);
    r.servicesUnchanged += unchanged + upserts.length - changed.length;
    // Remember the order and the fields as given, for the cheap comparison next time.
    for (const p of upserts) this.#state.get(p.key)!.given = givenOf(p.input);
    this.#lastOrder = order.map((x) => ('input' in x ? this.#state.get(x.key)! : x));
    return r;
  }

  /** Adds services (each must be new: BpfError EEXIST). Throws as apply(). */
  add(list: Service | readonly Service[]): ApplyResult {
    return this.write(Array.isArray(list) ? list : [list as Service], 'add');
  }

  /** Changes services (each must exist: BpfError ENOENT). Throws as apply(). */
  change(list: Service | readonly Service[]): ApplyResult {
    return this.write(Array.isArray(list) ? list : [list as Service], 'change');
  }

  /** Adds or changes services. Throws as apply(). */
  set(list: Service | readonly Service[]): ApplyResult {
    return this.write(Array.isArray(list) ? list : [list as Service], 'set');
  }

  /**
   * Writes some services, leaving the others as they are: all or nothing
   * (every check before any write). Throws as apply(), and a BpfError
   * EEXIST (mode 'add', a service exists) or ENOENT (mode 'change', one
   * does not).
   */
  write(list: readonly Service[], mode: WriteMode = 'set'): ApplyResult {
    const parsed = list.map(checkService);
    const verb = mode === 'change' ? 'change' : 'add';
    const op = parsed.length === 1 ? `${verb} service ${parsed[0].key}` : `${verb} ${parsed.length} services`;
    const seen = new Set<string>();
    for (const p of parsed) {
      if (seen.has(p.key)) throw new BpfError(op, Errno.EINVAL, `service ${p.key} is listed twice`);
      seen.add(p.key);
      const cur = this.#state.get(p.key);
      if (mode === 'add' && cur) throw new BpfError(op, Errno.EEXIST, `service ${p.key} exists; use change or set`);
      if (mode === 'change' && !cur) throw new BpfError(op, Errno.ENOENT, `no service ${p.key}; use add`);
    }
    const changed = parsed.filter((p) => !this.#equalsState(p));
    const r = this.#commit(op, changed, []);
    r.servicesUnchanged += parsed.length - changed.length;
    return r;
  }

  /**
   * Removes services, all or nothing: throws a BpfError (ENOENT) naming the
   * first that does not exist before removing any, a TypeError/RangeError
   * for a bad address.
   */
  remove(addrs: ServiceAddr | readonly ServiceAddr[]): ApplyResult {
    const list = Array.isArray(addrs) ? addrs : [addrs as ServiceAddr];
    const keys = list.map((a) => {
      const vip = checkIp('service', a?.vip);
      const port = checkPort('service', a.port);
      const proto = checkProto('service', a.proto);
      return `${formatIpv4(vip)}:${port}/${protoOf(proto)}`;
    });
    const op = keys.length === 1 ? `remove service ${keys[0]}` : `remove ${keys.length} services`;
    const removes: SvcState[] = [];
    const seen = new Set<string>();
    for (const k of keys) {
      const st = this.#state.get(k);
      if (!st) throw new BpfError(op, Errno.ENOENT, `no service ${k}`);
      if (seen.has(k)) continue;
      seen.add(k);
      removes.push(st);
    }
    return this.#commit(op, [], removes);
  }

  /** Removes every service. Throws a BpfError. */
  clear(): ApplyResult {
    return this.#commit('remove every service', [], [...this.#state.values()]);
  }

  /** True when the parsed service is exactly what the table holds (backends in any order). */
  #equalsState(p: ParsedService): boolean {
    const st = this.#state.get(p.key);
    if (!st || st.backends.size !== p.backends.length) return false;
    return p.backends.every((b) => st.backends.get(b.key)?.weight === b.weight);
  }

  /** Checks everything, then writes the changes in the safe order, then updates the state. */
  #commit(op: string, upserts: ParsedService[], removes: SvcState[]): ApplyResult {
    const result: ApplyResult = {
      servicesAdded: 0, servicesChanged: 0, servicesRemoved: removes.length, servicesUnchanged: 0,
      backendsAdded: 0, backendsChanged: 0, backendsRemoved: 0, maglevWritten: 0,
    };
    if (upserts.length === 0 && removes.length === 0 && this.#orphans.length === 0) return result;
    this.#checkVips(op, upserts, removes);
    // Capacity, before anything is written.
    let added = 0;
    let newBackends = 0;
    for (const p of upserts) {
      const st = this.#state.get(p.key);
      if (!st) added++;
      for (const b of p.backends) if (!st?.backends.has(b.key)) newBackends++;
    }
    if (this.#state.size + added > this.#maps.services.maxEntries) {
      throw new BpfError(op, Errno.E2BIG, `${LB_MAPS.services} holds ${this.#maps.services.maxEntries} services; this write needs ${this.#state.size + added} at once (new ones are added before removed ones go)`);
    }
    const serviceIds = this.#allocate(this.#usedServiceIds, added, 0);
    if (!serviceIds) throw new BpfError(op, Errno.E2BIG, `room for ${this.#maxServices} services (${LB_MAPS.maglev}), ${countUsed(this.#usedServiceIds)} in use, ${added} more needed (ids of removed services are free after this write)`);
    const backendIds = this.#allocate(this.#usedBackendIds, newBackends, 1);
    if (!backendIds) throw new BpfError(op, Errno.E2BIG, `room for ${this.maxBackends} backends (${LB_MAPS.backends}), ${countUsed(this.#usedBackendIds) - 1} in use, ${newBackends} more needed (ids of removed backends are free after this write)`);

    // Plan: the next state of every upserted service, and what to write.
    const backendWrites: Array<[number, BackendState, number]> = []; // id, backend, service id
    const tables: SvcState[] = [];
    const serviceWrites: Array<readonly [RawServiceKey, RawServiceInfo]> = [];
    const zeroed: number[] = [...this.#orphans];
    const next: Array<[SvcState, SvcState | undefined]> = [];
    let si = 0;
    let bi = 0;
    for (const p of upserts) {
      const cur = this.#state.get(p.key);
      const id = cur ? cur.id : serviceIds[si++];
      const backends = new Map<string, BackendState>();
      let liveChanged = !cur;
      let live = 0;
      for (const b of p.backends) {
        const bid = b.key;
        const old = cur?.backends.get(bid);
        // The parsed backend becomes the state (one object per backend, not two).
        const bs = b as BackendState;
        bs.id = old ? old.id : backendIds[bi++];
        backends.set(bid, bs);
        if (b.weight > 0) live++;
        if (!old) {
          result.backendsAdded++;
          if (b.weight > 0) liveChanged = true;
        } else if (old.weight !== b.weight) {
          result.backendsChanged++;
          liveChanged = true;
        } else continue;
        backendWrites.push([bs.id, bs, id]);
      }
      if (cur) {
        for (const [bid, old] of cur.backends) {
          if (backends.has(bid)) continue;
          zeroed.push(old.id);
          if (old.weight > 0) liveChanged = true;
        }
      }
      const st: SvcState = {
        key: p.key, id, vip: p.vip, port: p.port, proto: p.proto, vipText: p.vipText, protoText: p.protoText, backends, live, mark: this.#gen,
      };
      next.push([st, cur]);
      if (cur) result.servicesChanged++;
      else result.servicesAdded++;
      // A service with no live backend takes no new flows: its table is never read, so it is not written.
      // Weights scaled alike (a lone backend's weight, say) give the same table: compared in lowest terms.
      if (liveChanged && live > 0 && (!cur || cur.live === 0 || tableInputs(cur.backends.values()) !== tableInputs(backends.values()))) tables.push(st);
      if (!cur || cur.live !== live) serviceWrites.push([{ vip: p.vip, port: p.port, proto: p.proto }, { id, backend_count: live }]);
    }
    for (const st of removes) for (const b of st.backends.values()) zeroed.push(b.id);
    result.backendsRemoved = zeroed.length;
    result.maglevWritten = tables.length;

    // Encode the batches in place.
    const bkeys = Buffer.alloc(4 * backendWrites.length);
    const bvals = Buffer.alloc(backendStruct.size * backendWrites.length);
    const raw: RawBackend = { ip: 0, port: 0, flags: BACKEND_F_ACTIVE, service_id: 0, weight: 0 };
    backendWrites.forEach(([id, b, sid], i) => {
      u32.encode(id, bkeys, 4 * i);
      raw.ip = b.ip; raw.port = b.port; raw.service_id = sid; raw.weight = b.weight;
      backendStruct.encode(raw, bvals, i * backendStruct.size);
    });
    const newIds = next.filter(([, cur]) => !cur).map(([st]) => st.id);

    // Write, in the order the data plane needs; then the epoch, so the data
    // plane's flow cache forgets what it cached before any of it.
    try {
      this.#maps.backends.updateBatchRaw(bkeys, bvals, backendWrites.length);
      this.#zeroHits(newIds);
      this.#writeTables(tables);
      this.#maps.services.updateBatch(serviceWrites);
      if (removes.length) this.#maps.services.deleteBatch(removes.map((st) => ({ vip: st.vip, port: st.port, proto: st.proto })));
      if (zeroed.length) {
        const zkeys = Buffer.alloc(4 * zeroed.length);
        zeroed.forEach((id, i) => u32.encode(id, zkeys, 4 * i));
        this.#maps.backends.updateBatchRaw(zkeys, Buffer.alloc(backendStruct.size * zeroed.length), zeroed.length);
      }
    } catch (e) {
      this.#bumpEpoch();
      this.#load();
      throw e;
    }
    const wrote = backendWrites.length || tables.length || serviceWrites.length || removes.length || zeroed.length;
    if (wrote && this.#maps.globals) bumpEpoch(this.#maps.globals);

    // The new state; ids freed by removals become free only now.
    for (const [st, cur] of next) {
      if (cur) {
        for (const b of cur.backends.values()) this.#unref(this.#ipRefs, b.ip);
      } else {
        this.#vipRefs.set(st.vip, (this.#vipRefs.get(st.vip) ?? 0) + 1);
      }
      for (const b of st.backends.values()) {
        this.#ipRefs.set(b.ip, (this.#ipRefs.get(b.ip) ?? 0) + 1);
        this.#usedBackendIds[b.id] = 1;
      }
      this.#state.set(st.key, st);
      this.#usedServiceIds[st.id] = 1;
    }
    for (const st of removes) {
      this.#state.delete(st.key);
      this.#usedServiceIds[st.id] = 0;
      this.#unref(this.#vipRefs, st.vip);
      for (const b of st.backends.values()) this.#unref(this.#ipRefs, b.ip);
    }
    for (const id of zeroed) this.#usedBackendIds[id] = 0;
    for (const [st] of next) for (const b of st.backends.values()) this.#usedBackendIds[b.id] = 1;
    this.#orphans = [];
    return result;
  }

  /**
   * Builds and writes the Maglev tables of `tables`, MAGLEV_CHUNK at a time
   * through one reused buffer (built where the cache is warm; no buffer of
   * tens of megabytes for the garbage collector to chase).
   */
  #writeTables(tables: SvcState[]): void {
    const tsize = 4 * this.#size;
    const per = Math.min(MAGLEV_CHUNK, tables.length);
    if (per === 0) return;
    const keys = Buffer.alloc(4 * per);
    const vals = Buffer.alloc(tsize * per);
    const views = Array.from({ length: per }, (_, i) => new Uint32Array(vals.buffer, vals.byteOffset + i * tsize, this.#size));
    const inputs: MaglevBackend[] = [];
    for (let start = 0; start < tables.length; start += per) {
      const n = Math.min(per, tables.length - start);
      for (let i = 0; i < n; i++) {
        const st = tables[start + i];
        u32.encode(st.id, keys, 4 * i);
        inputs.length = 0;
        for (const b of st.backends.values()) inputs.push(b);
        buildMaglev(inputs, this.#size, views[i]);
      }
      this.#maps.maglev.updateBatchRaw(keys, vals, n);
    }
  }

  #unref(refs: Map<number, number>, k: number): void {
    const n = (refs.get(k) ?? 0) - 1;
    if (n > 0) refs.set(k, n);
    else refs.delete(k);
  }

  /**
   * Zeroes the hit counters of new service ids: one write per id for a
   * few, else one batch read of service_hits and a write only for the
   * counters that are not zero already.
   */
  /** After a failed write: changes lb_globals' epoch when the table has it, best effort (the error thrown is the write's). */
  #bumpEpoch(): void {
    if (!this.#maps.globals) return;
    try {
      bumpEpoch(this.#maps.globals);
    } catch (e) {
      if (!(e instanceof BpfError)) throw e;
    }
  }

  #zeroHits(ids: number[]): void {
    if (ids.length === 0) return;
    const zero = { packets: 0, bytes: 0 };
    if (ids.length <= 64) {
      for (const id of ids) this.#maps.hits.set(id, zero);
      return;
    }
    const want = new Uint8Array(this.#maxServices);
    for (const id of ids) want[id] = 1;
    const dirty: number[] = [];
    const per = Math.ceil(serviceCounterStruct.size / 8) * 8 * possibleCpus;
    this.#maps.hits.lookupBatchRaw((keys, values, count) => {
      for (let i = 0; i < count; i++) {
        const id = u32.decode(keys, 4 * i);
        if (!want[id]) continue;
        for (let o = i * per, end = o + per; o < end; o++) if (values[o] !== 0) { dirty.push(id); break; }
      }
    });
    for (const id of dirty) this.#maps.hits.set(id, zero);
  }

  /** Refuses a backend whose address is a VIP after this write, and a new VIP that is the address of a backend after it. */
  #checkVips(op: string, upserts: ParsedService[], removes: SvcState[]): void {
    if (upserts.length === 0) return;
    const vipDelta = new Map<number, number>();
    const bump = (m: Map<number, number>, k: number, d: number) => m.set(k, (m.get(k) ?? 0) + d);
    for (const st of removes) bump(vipDelta, st.vip, -1);
    const newVips: ParsedService[] = [];
    for (const p of upserts) {
      if (this.#state.has(p.key)) continue;
      bump(vipDelta, p.vip, 1);
      if (!this.#vipRefs.has(p.vip)) newVips.push(p);
    }
    const vipRefs = this.#vipRefs;
    for (const p of upserts) {
      for (const b of p.backends) {
        if (!vipRefs.has(b.ip) && !vipDelta.has(b.ip)) continue;
        if ((vipRefs.get(b.ip) ?? 0) + (vipDelta.get(b.ip) ?? 0) <= 0) continue;
        const owner = upserts.find((u) => u.vip === b.ip)?.key ?? [...this.#state.values()].find((st) => st.vip === b.ip && !removes.includes(st))?.key;
        throw new BpfError(op, Errno.EINVAL, `backend ${b.key} of ${p.key} is a service address (VIP of ${owner}); a backend must be a real host`);
      }
    }
    // A new VIP that some backend staying after this write has (backends of upserts were checked above).
    let upKeys: Set<string> | undefined;
    for (const p of newVips) {
      if (!this.#ipRefs.has(p.vip)) continue;
      upKeys ??= new Set(upserts.map((u) => u.key));
      for (const st of this.#state.values()) {
        if (upKeys.has(st.key) || removes.includes(st)) continue;
        for (const b of st.backends.values()) {
          if (b.ip === p.vip) throw new BpfError(op, Errno.EINVAL, `service ${p.key}'s VIP is the address of backend ${b.key} of ${st.key}; a backend must be a real host`);
        }
      }
    }
  }

  /** The `n` lowest free ids at or above `from`, or undefined when there are not enough. */
  #allocate(used: Uint8Array, n: number, from: number): number[] | undefined {
    const out: number[] = [];
    if (n === 0) return out;
    for (let i = from; i < used.length; i++) {
      if (used[i]) continue;
      out.push(i);
      if (out.length === n) return out;
    }
    return undefined;
  }

  /** The desired-state form of the table: every service with its backends and weights, sorted by VIP, port, protocol, and backends by address and port. */
  services(): Array<Required<Service>> {
    return this.#sorted().map((st) => ({
      vip: st.vipText, port: st.port, proto: st.protoText,
      backends: sortedBackends(st).map((b) => ({ ip: b.ipText, port: b.port, weight: b.weight })),
    }));
  }

  /** One service in desired-state form, or undefined. Throws a TypeError/RangeError for a bad address. */
  get(addr: ServiceAddr): Required<Service> | undefined {
    const key = `${formatIpv4(checkIp('service', addr?.vip))}:${checkPort('service', addr.port)}/${protoOf(checkProto('service', addr.proto))}`;
    const st = this.#state.get(key);
    return st && { vip: st.vipText, port: st.port, proto: st.protoText, backends: sortedBackends(st).map((b) => ({ ip: b.ipText, port: b.port, weight: b.weight })) };
  }

  /**
   * Every service with its ids, backends, weights, each backend's share of
   * the Maglev table as maglev_map holds it, and the service's hits summed
   * over CPUs (with those still pending in the flow cache, when the table
   * has it); sorted as services(). Throws a BpfError.
   */
  list(): ServiceEntry[] {
    const pending = this.#flowCache ? readFlowCachePending(this.#flowCache).byService : undefined;
    return this.#sorted().map((st) => {
      const counts = new Map<number, number>();
      if (st.live > 0) {
        const table = this.#maps.maglev.get(st.id);
        if (table) for (const id of table) counts.set(id, (counts.get(id) ?? 0) + 1);
      }
      const hits = this.#maps.hits.summed(st.id) ?? { packets: 0, bytes: 0 };
      const p = pending?.get(st.id);
      return {
        vip: st.vipText, port: st.port, proto: st.protoText, id: st.id,
        backends: sortedBackends(st).map((b) => {
          const slots = counts.get(b.id) ?? 0;
          return { ip: b.ipText, port: b.port, weight: b.weight, id: b.id, slots, share: slots / this.#size };
        }),
        packets: hits.packets + (p?.packets ?? 0), bytes: hits.bytes + (p?.bytes ?? 0),
      };
    });
  }

  #sorted(): SvcState[] {
    return [...this.#state.values()].sort((a, b) => a.vip - b.vip || a.port - b.port || a.proto - b.proto);
  }

  /** What the kernel says about the four maps (sizes, ids). Throws a BpfError. */
  mapInfo(): Record<Exclude<keyof LbMaps, 'globals'>, MapInfoView> {
    const m = this.#maps;
    return { services: m.services.info(), backends: m.backends.info(), maglev: m.maglev.info(), hits: m.hits.info() };
  }

  /** Closes the maps when the table opened them (openPinned); maps of an object close with it. Safe to call twice. */
  close(): void {
    if (this.#owned) {
      closeLbMaps(this.#maps);
      this.#flowCache?.close();
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function countUsed(used: Uint8Array): number {
  let n = 0;
  for (const x of used) n += x;
  return n;
}

/** What a Maglev table is built from, in lowest terms: live backends by id with their weights divided by the weights' gcd. */
function tableInputs(bs: Iterable<BackendState>): string {
  const live = [...bs].filter((b) => b.weight > 0).sort((a, b) => a.id - b.id);
  let g = 0;
  for (const b of live) g = gcd(g, b.weight);
  return live.map((b) => `${b.id}:${b.key}:${b.weight / g}`).join(',');
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

function sortedBackends(st: SvcState): BackendState[] {
  return [...st.backends.values()].sort((a, b) => a.ip - b.ip || a.port - b.port);
}

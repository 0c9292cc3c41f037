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
 * Adoption: the constructor reads the maps and rebuilds the state from
 * them (struct backend carries its service id and weight), so a restarted
 * loader that adopts pinned maps keeps every id. Backends left active by a
 * call that died half way (their service gone or never written) are zeroed
 * by the next write.
 */
import { join } from 'node:path';
import { formatIpv4, u32 } from '../codec.js';
import { BpfError, Errno } from '../errors.js';
import { BpfMap, PerCpuMap, type MapInfoView } from '../map.js';
import type { BpfObject } from '../object.js';
import {
  BACKEND_F_ACTIVE, LB_MAGLEV_SIZE, closeLbMaps, LB_MAPS, backendStruct, maglevTableCodec, serviceCounterStruct, serviceInfoStruct, serviceKeyStruct,
  type LbMaps, type RawBackend, type RawServiceInfo, type RawServiceKey,
} from './layout.js';
import { buildMaglev, isPrime } from './maglev.js';
import {
  checkIp, checkPort, checkProto, checkService, protoOf, type ParsedService, type Service, type ServiceAddr, type ServiceProto,
} from './model.js';

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

interface BackendState { id: number; key: string; ip: number; port: number; weight: number; mark: number }
interface SvcState {
  key: string; id: number; vip: number; port: number; proto: number;
  /** Friendly forms, canonical (what a caller's matching service compares to). */
  vipText: string; protoText: ServiceProto;
  backends: Map<string, BackendState>;
  /** Backends with weight > 0 (service_info.backend_count). */
  live: number;
  mark: number;
}

const liveCount = (bs: Iterable<{ weight: number }>) => { let n = 0; for (const b of bs) if (b.weight > 0) n++; return n; };

/**
 * The services of one load balancer in service_map, backend_map, maglev_map
 * and service_hits. Needs the maps of the contract (bpf/xdp_dnat/xdp_dnat.h);
 * any kernel with BPF_MAP_*_BATCH (5.6+) for the batch writes.
 */
export class ServiceTable {
  readonly #maps: LbMaps;
  readonly #size: number;
  readonly #maxServices: number;
  #state = new Map<string, SvcState>();
  #usedServiceIds: Uint8Array;
  #usedBackendIds: Uint8Array;
  /** Active backend ids that belong to no service (an interrupted write): zeroed by the next write. */
  #orphans: number[] = [];
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
  constructor(maps: LbMaps, opts: { owned?: boolean; pinDir?: string } = {}) {
    this.#maps = maps;
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
    });
  }

  /**
   * Opens the four maps pinned in `dir` (file names as LB_MAPS) and adopts
   * them. Throws a BpfError (ENOENT when one is not pinned there) or as
   * the constructor.
   */
  static openPinned(dir: string, size = LB_MAGLEV_SIZE): ServiceTable {
    const opened: Array<{ close(): void }> = [];
    const keep = <M extends { close(): void }>(m: M): M => { opened.push(m); return m; };
    try {
      const maps: LbMaps = {
        services: keep(BpfMap.openPinned(join(dir, LB_MAPS.services), serviceKeyStruct, serviceInfoStruct)),
        backends: keep(BpfMap.openPinned(join(dir, LB_MAPS.backends), u32, backendStruct)),
        maglev: keep(BpfMap.openPinned(join(dir, LB_MAPS.maglev), u32, maglevTableCodec(size))),
        hits: keep(PerCpuMap.openPinned(join(dir, LB_MAPS.hits), u32, serviceCounterStruct)),
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

  /** Reads the maps and rebuilds the state (ids, backends, weights). */
  #load(): void {
    const op = 'adopt load balancer maps';
    this.#state.clear();
    this.#usedServiceIds.fill(0);
    this.#usedBackendIds.fill(0);
    this.#usedBackendIds[0] = 1;
    this.#orphans = [];
    const byId = new Map<number, SvcState>();
    for (const [k, info] of this.#maps.services.readAll().entries) {
      let protoText: ServiceProto;
      try { protoText = protoOf(k.proto); } catch { throw new BpfError(op, Errno.EINVAL, `${LB_MAPS.services} has a service of protocol ${k.proto}`); }
      const key = `${formatIpv4(k.vip)}:${k.port}/${protoText}`;
      if (info.id >= this.#maxServices) throw new BpfError(op, Errno.EINVAL, `service ${key} has id ${info.id}, beyond the ${this.#maxServices} Maglev tables`);
      const other = byId.get(info.id);
      if (other) throw new BpfError(op, Errno.EINVAL, `services ${other.key} and ${key} both have id ${info.id}`);
      const st: SvcState = { key, id: info.id, vip: k.vip, port: k.port, proto: k.proto, vipText: formatIpv4(k.vip), protoText, backends: new Map(), live: 0, mark: 0 };
      byId.set(info.id, st);
      this.#state.set(key, st);
      this.#usedServiceIds[info.id] = 1;
    }
    const all = this.#maps.backends.readAll().entries;
    for (const [id, b] of all) {
      if (!(b.flags & BACKEND_F_ACTIVE) || id === 0 || id >= this.#usedBackendIds.length) continue;
      this.#usedBackendIds[id] = 1;
      const st = byId.get(b.service_id);
      const key = `${formatIpv4(b.ip)}:${b.port}`;
      if (!st || st.backends.has(key)) { this.#orphans.push(id); continue; }
      st.backends.set(key, { id, key, ip: b.ip, port: b.port, weight: Math.min(b.weight, 65535), mark: 0 });
    }
    for (const st of this.#state.values()) st.live = liveCount(st.backends.values());
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
    const upserts: ParsedService[] = [];
    let unchanged = 0;
    for (const s of desired) {
      const st = this.#sameAsState(s, gen);
      if (st) {
        if (st.mark === gen) throw new BpfError(op, Errno.EINVAL, `service ${st.key} is listed twice`);
        st.mark = gen;
        unchanged++;
        continue;
      }
      const p = checkService(s);
      const cur = this.#state.get(p.key);
      if (cur) {
        if (cur.mark === gen) throw new BpfError(op, Errno.EINVAL, `service ${p.key} is listed twice`);
        cur.mark = gen;
      }
      upserts.push(p);
    }
    // A changed service's key may be listed twice among the upserts of services new to the table.
    const seen = new Set<string>();
    for (const p of upserts) {
      if (seen.has(p.key)) throw new BpfError(op, Errno.EINVAL, `service ${p.key} is listed twice`);
      seen.add(p.key);
    }
    const removes: SvcState[] = [];
    for (const st of this.#state.values()) if (st.mark !== gen) removes.push(st);
    const changed = upserts.filter((p) => !this.#equalsState(p));
    const r = this.#commit(op, changed, removes);
    r.servicesUnchanged += unchanged + upserts.length - changed.length;
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

  /** The state of a service equal to `s` (same canonical text, same backends and weights, none twice), or undefined. Cheap: no parsing. */
  #sameAsState(s: Service, gen: number): SvcState | undefined {
    if (!s || typeof s !== 'object' || !Array.isArray(s.backends)) return undefined;
    const st = this.#state.get(`${s.vip}:${s.port}/${s.proto}`);
    if (!st || st.port !== s.port || st.protoText !== s.proto || st.vipText !== s.vip || st.backends.size !== s.backends.length) return undefined;
    for (const b of s.backends) {
      if (!b || typeof b !== 'object') return undefined;
      const bs = st.backends.get(`${b.ip}:${b.port}`);
      if (!bs || bs.port !== b.port || bs.weight !== (b.weight ?? 1) || bs.mark === gen) return undefined;
      bs.mark = gen;
    }
    return st;
  }

  /** True when the parsed service is exactly what the table holds. */
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
    const added = upserts.filter((p) => !this.#state.has(p.key));
    if (this.#state.size + added.length > this.#maps.services.maxEntries) {
      throw new BpfError(op, Errno.E2BIG, `${LB_MAPS.services} holds ${this.#maps.services.maxEntries} services; this write needs ${this.#state.size + added.length} at once (new ones are added before removed ones go)`);
    }
    const serviceIds = this.#allocate(this.#usedServiceIds, added.length, 0);
    if (!serviceIds) throw new BpfError(op, Errno.E2BIG, `room for ${this.#maxServices} services (${LB_MAPS.maglev}), ${this.#countUsed(this.#usedServiceIds)} in use, ${added.length} more needed (ids of removed services are free after this write)`);
    let newBackends = 0;
    for (const p of upserts) {
      const st = this.#state.get(p.key);
      for (const b of p.backends) if (!st?.backends.has(b.key)) newBackends++;
    }
    const backendIds = this.#allocate(this.#usedBackendIds, newBackends, 1);
    if (!backendIds) throw new BpfError(op, Errno.E2BIG, `room for ${this.maxBackends} backends (${LB_MAPS.backends}), ${this.#countUsed(this.#usedBackendIds) - 1} in use, ${newBackends} more needed (ids of removed backends are free after this write)`);

    // Plan: the next state of every upserted service, and what to write.
    const backendWrites: Array<readonly [number, RawBackend]> = [];
    const maglevWrites: Array<readonly [number, Uint32Array]> = [];
    const serviceWrites: Array<readonly [RawServiceKey, RawServiceInfo]> = [];
    const zeroed: number[] = [...this.#orphans];
    const next: SvcState[] = [];
    let si = 0;
    let bi = 0;
    for (const p of upserts) {
      const cur = this.#state.get(p.key);
      const id = cur ? cur.id : serviceIds[si++];
      const backends = new Map<string, BackendState>();
      let liveChanged = !cur;
      for (const b of p.backends) {
        const old = cur?.backends.get(b.key);
        const bs: BackendState = { id: old ? old.id : backendIds[bi++], key: b.key, ip: b.ip, port: b.port, weight: b.weight, mark: 0 };
        backends.set(b.key, bs);
        if (!old) {
          result.backendsAdded++;
          if (b.weight > 0) liveChanged = true;
        } else if (old.weight !== b.weight) {
          result.backendsChanged++;
          if (old.weight > 0 || b.weight > 0) liveChanged = true;
        } else continue;
        backendWrites.push([bs.id, { ip: b.ip, port: b.port, flags: BACKEND_F_ACTIVE, service_id: id, weight: b.weight }]);
      }
      if (cur) {
        for (const [k, old] of cur.backends) {
          if (backends.has(k)) continue;
          zeroed.push(old.id);
          if (old.weight > 0) liveChanged = true;
        }
      }
      const live = liveCount(backends.values());
      const st: SvcState = {
        key: p.key, id, vip: p.vip, port: p.port, proto: p.proto, vipText: p.service.vip, protoText: p.service.proto,
        backends, live, mark: 0,
      };
      next.push(st);
      if (cur) result.servicesChanged++;
      else result.servicesAdded++;
      // A service with no live backend takes no new flows: its table is never read, so it is not written.
      // Weights scaled alike (a lone backend's weight, say) give the same table: compared in lowest terms.
      if (liveChanged && live > 0 && (!cur || cur.live === 0 || tableInputs(cur.backends.values()) !== tableInputs(backends.values()))) {
        maglevWrites.push([id, buildMaglev([...backends.values()].map((b) => ({ id: b.id, key: b.key, weight: b.weight })), this.#size)]);
      }
      if (!cur || cur.live !== live) serviceWrites.push([{ vip: p.vip, port: p.port, proto: p.proto }, { id, backend_count: live }]);
    }
    for (const st of removes) for (const b of st.backends.values()) zeroed.push(b.id);
    result.backendsRemoved = zeroed.length;
    result.maglevWritten = maglevWrites.length;

    // Write, in the order the data plane needs.
    try {
      this.#maps.backends.updateBatch(backendWrites);
      for (const p of next) if (!this.#state.has(p.key)) this.#maps.hits.set(p.id, { packets: 0, bytes: 0 });
      this.#maps.maglev.updateBatch(maglevWrites);
      this.#maps.services.updateBatch(serviceWrites);
      const gone = removes.map((st) => ({ vip: st.vip, port: st.port, proto: st.proto }));
      if (gone.length) {
        const n = this.#maps.services.deleteBatch(gone);
        if (n !== gone.length) throw new BpfError(`${op}: delete from ${LB_MAPS.services}`, Errno.ENOENT, `${gone.length - n} services were already gone (another process edits these maps)`);
      }
      const zero: RawBackend = { ip: 0, port: 0, flags: 0, service_id: 0, weight: 0 };
      this.#maps.backends.updateBatch(zeroed.map((id) => [id, zero] as const));
    } catch (e) {
      this.#load();
      throw e;
    }

    // The new state; ids freed by removals become free only now.
    for (const st of next) {
      this.#state.set(st.key, st);
      this.#usedServiceIds[st.id] = 1;
      for (const b of st.backends.values()) this.#usedBackendIds[b.id] = 1;
    }
    for (const st of removes) {
      this.#state.delete(st.key);
      this.#usedServiceIds[st.id] = 0;
    }
    for (const id of zeroed) this.#usedBackendIds[id] = 0;
    this.#orphans = [];
    return result;
  }

  /** Refuses a backend whose address is a VIP after this write, and a new VIP that is the address of a backend. */
  #checkVips(op: string, upserts: ParsedService[], removes: SvcState[]): void {
    if (upserts.length === 0) return;
    const removed = new Set(removes.map((s) => s.key));
    const upKeys = new Set(upserts.map((p) => p.key));
    const vips = new Map<number, string>();
    const oldVips = new Set<number>();
    for (const st of this.#state.values()) {
      oldVips.add(st.vip);
      if (!removed.has(st.key) && !upKeys.has(st.key) && !vips.has(st.vip)) vips.set(st.vip, st.key);
    }
    for (const p of upserts) if (!vips.has(p.vip)) vips.set(p.vip, p.key);
    for (const p of upserts) {
      for (const b of p.backends) {
        const owner = vips.get(b.ip);
        if (owner) throw new BpfError(op, Errno.EINVAL, `backend ${b.key} of ${p.key} is a service address (VIP of ${owner}); a backend must be a real host`);
      }
    }
    const newVips = upserts.filter((p) => !oldVips.has(p.vip));
    if (newVips.length === 0) return;
    const wanted = new Map(newVips.map((p) => [p.vip, p.key]));
    for (const st of this.#state.values()) {
      if (removed.has(st.key) || upKeys.has(st.key)) continue;
      for (const b of st.backends.values()) {
        const owner = wanted.get(b.ip);
        if (owner) throw new BpfError(op, Errno.EINVAL, `service ${owner}'s VIP is the address of backend ${b.key} of ${st.key}; a backend must be a real host`);
      }
    }
  }

  /** The `n` lowest free ids at or above `from`, or undefined when there are not enough. */
  #allocate(used: Uint8Array, n: number, from: number): number[] | undefined {
    const out: number[] = [];
    for (let i = from; i < used.length && out.length < n; i++) if (!used[i]) out.push(i);
    return out.length === n ? out : undefined;
  }

  #countUsed(used: Uint8Array): number {
    let n = 0;
    for (const x of used) n += x;
    return n;
  }

  /** The desired-state form of the table: every service with its backends and weights, sorted by VIP, port, protocol, and backends by address and port. */
  services(): Array<Required<Service>> {
    return this.#sorted().map((st) => ({
      vip: st.vipText, port: st.port, proto: st.protoText,
      backends: sortedBackends(st).map((b) => ({ ip: formatIpv4(b.ip), port: b.port, weight: b.weight })),
    }));
  }

  /** One service in desired-state form, or undefined. Throws a TypeError/RangeError for a bad address. */
  get(addr: ServiceAddr): Required<Service> | undefined {
    const key = `${formatIpv4(checkIp('service', addr?.vip))}:${checkPort('service', addr.port)}/${protoOf(checkProto('service', addr.proto))}`;
    const st = this.#state.get(key);
    return st && { vip: st.vipText, port: st.port, proto: st.protoText, backends: sortedBackends(st).map((b) => ({ ip: formatIpv4(b.ip), port: b.port, weight: b.weight })) };
  }

  /**
   * Every service with its ids, backends, weights, each backend's share of
   * the Maglev table as maglev_map holds it, and the service's hits summed
   * over CPUs; sorted as services(). Throws a BpfError.
   */
  list(): ServiceEntry[] {
    return this.#sorted().map((st) => {
      const counts = new Map<number, number>();
      if (st.live > 0) {
        const table = this.#maps.maglev.get(st.id);
        if (table) for (const id of table) counts.set(id, (counts.get(id) ?? 0) + 1);
      }
      const hits = this.#maps.hits.summed(st.id) ?? { packets: 0, bytes: 0 };
      return {
        vip: st.vipText, port: st.port, proto: st.protoText, id: st.id,
        backends: sortedBackends(st).map((b) => {
          const slots = counts.get(b.id) ?? 0;
          return { ip: formatIpv4(b.ip), port: b.port, weight: b.weight, id: b.id, slots, share: slots / this.#size };
        }),
        packets: hits.packets, bytes: hits.bytes,
      };
    });
  }

  #sorted(): SvcState[] {
    return [...this.#state.values()].sort((a, b) => a.vip - b.vip || a.port - b.port || a.proto - b.proto);
  }

  /** What the kernel says about the four maps (sizes, ids). Throws a BpfError. */
  mapInfo(): Record<keyof LbMaps, MapInfoView> {
    const m = this.#maps;
    return { services: m.services.info(), backends: m.backends.info(), maglev: m.maglev.info(), hits: m.hits.info() };
  }

  /** Closes the maps when the table opened them (openPinned); maps of an object close with it. Safe to call twice. */
  close(): void {
    if (this.#owned) closeLbMaps(this.#maps);
  }

  [Symbol.dispose](): void {
    this.close();
  }
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
export type { LbMaps } from './layout.js';

/**
 * The services of the one-backend xdp_dnat data plane (the program this
 * branch builds): service_map (service → its one backend), reverse_map
 * (backend → service, for replies), service_hits keyed by service, and
 * dnat_stats. Replaced by src/lb/table.ts's ServiceTable once the Maglev
 * data plane (issue 12) is in; kept whole until then so the lesson runs.
 *
 * - Friendly services: `{ vip: '10.96.0.10', port: 80, proto: 'tcp',
 *   backend: { ip: '10.244.1.5', port: 8080 } }`, parsed from and shown as
 *   "10.96.0.10:80/tcp=10.244.1.5:8080" / "10.96.0.10:80/tcp → 10.244.1.5:8080";
 *   the codecs write network byte order and zeroed pads underneath.
 *   fromLbService() takes a service of the load balancer's model
 *   (src/lb/model.ts) with exactly one backend.
 * - Why a reverse map maintained here rather than a scan: the reply path
 *   runs per packet, and a BPF program cannot search a hash map by value
 *   short of walking every entry. So every change writes both directions.
 *   The price: a backend (address, port, protocol) serves one service at a
 *   time, since a reply alone cannot tell which VIP its client used; adding
 *   a second service with the same backend is refused.
 */
import { join } from 'node:path';
import { formatIpv4, u32, u64, type Codec } from '../../codec.js';
import { BpfError, Errno } from '../../errors.js';
import { BpfMap, PerCpuMap } from '../../map.js';
import type { BpfObject } from '../../object.js';
import {
  checkIp, checkPort, checkProto, formatServiceAddr, parseServiceAddr, parseService as parseLbService, protoOf, type Service as LbService, type ServiceAddr, type ServiceProto,
} from '../../lb/model.js';
import {
  DNAT_REASONS, MAPS, MAX_SERVICES, backendKeyStruct, backendStruct, serviceCounterStruct, serviceKeyStruct, type DnatStats,
} from '../xdp_dnat.js';
import { PINS } from './pins.js';

export { formatServiceAddr, parseServiceAddr, type ServiceAddr, type ServiceProto };

/** Where a service's traffic goes. */
export interface BackendAddr {
  ip: string;
  port: number;
}
/** A service and its backend. */
export interface Service extends ServiceAddr {
  backend: BackendAddr;
}
/** A service with its hit counters (summed over CPUs). */
export interface ServiceEntry extends Service {
  packets: number;
  bytes: number;
}

/** service_map's key as a ServiceAddr. Encoding throws a TypeError/RangeError for a bad address, port or protocol. */
export const serviceKey: Codec<ServiceAddr> = {
  size: serviceKeyStruct.size,
  encode(v, buf, off = 0) {
    const what = 'service';
    serviceKeyStruct.encode({ vip: checkIp(what, v.vip), port: checkPort(what, v.port), proto: checkProto(what, v.proto) }, buf, off);
  },
  decode(buf, off = 0) {
    const k = serviceKeyStruct.decode(buf, off);
    return { vip: formatIpv4(k.vip), port: k.port, proto: protoOf(k.proto) };
  },
};
/** service_map's value as a BackendAddr. Encoding throws a TypeError/RangeError for a bad address or port. */
export const backendValue: Codec<BackendAddr> = {
  size: backendStruct.size,
  encode(v, buf, off = 0) {
    backendStruct.encode({ ip: checkIp('backend', v.ip), port: checkPort('backend', v.port) }, buf, off);
  },
  decode(buf, off = 0) {
    const b = backendStruct.decode(buf, off);
    return { ip: formatIpv4(b.ip), port: b.port };
  },
};
/** reverse_map's key: a backend with the protocol of its service. */
export const backendKey: Codec<BackendAddr & { proto: ServiceProto }> = {
  size: backendKeyStruct.size,
  encode(v, buf, off = 0) {
    backendKeyStruct.encode({ ip: checkIp('backend', v.ip), port: checkPort('backend', v.port), proto: checkProto('backend', v.proto) }, buf, off);
  },
  decode(buf, off = 0) {
    const b = backendKeyStruct.decode(buf, off);
    return { ip: formatIpv4(b.ip), port: b.port, proto: protoOf(b.proto) };
  },
};

/** "10.244.1.5:8080" */
export function formatBackend(b: BackendAddr): string {
  return `${b.ip}:${b.port}`;
}
/** "10.96.0.10:80/tcp → 10.244.1.5:8080" */
export function formatService(s: Service): string {
  return `${formatServiceAddr(s)} → ${formatBackend(s.backend)}`;
}

/**
 * Parses "VIP:PORT/PROTO=IP:PORT" (the load balancer's text form,
 * src/lb/model.ts, with exactly one backend of weight 1). Throws a
 * TypeError/RangeError saying what is wrong.
 */
export function parseService(text: string): Service {
  return fromLbService(parseLbService(text));
}

/** The lesson's service, pre-populated by the loader. */
export const DEFAULT_SERVICE: Service = { vip: '10.96.0.10', port: 80, proto: 'tcp', backend: { ip: '10.244.1.5', port: 8080 } };

const keyId = (s: ServiceAddr) => `${s.vip}:${s.port}/${s.proto}`;
const backendId = (b: BackendAddr, proto: ServiceProto) => `${b.ip}:${b.port}/${proto}`;

/** How a write treats existing services: add (must be new), change (must exist), set (either). */
export type WriteMode = 'add' | 'change' | 'set';

/* Inside the table, keys and values stay numbers as the kernel stores them
 * (addresses as parseIpv4 gives them, protocol numbers): each service is
 * parsed and checked once per call, not at every map operation. */
type RawKey = { vip: number; port: number; proto: number };
type RawBackend = { ip: number; port: number };
type RawBackendKey = { ip: number; port: number; proto: number };
type Counter = { packets: number; bytes: number };

interface Parsed { s: Service; key: RawKey; backend: RawBackend; rkey: RawBackendKey; id: string; bid: string }

const rawId = (k: RawKey) => `${k.vip}:${k.port}:${k.proto}`;
const rawBid = (b: RawBackend, proto: number) => `${b.ip}:${b.port}:${proto}`;
const sameRaw = (a: RawBackend | undefined, b: RawBackend | undefined) => !!a && !!b && a.ip === b.ip && a.port === b.port;
const friendlyKey = (k: RawKey): ServiceAddr => ({ vip: formatIpv4(k.vip), port: k.port, proto: protoOf(k.proto) });
const friendlyBackend = (b: RawBackend): BackendAddr => ({ ip: formatIpv4(b.ip), port: b.port });

function parseAddr(a: ServiceAddr): RawKey {
  if (!a || typeof a !== 'object') throw new TypeError('service: not a service');
  return { vip: checkIp('service', a.vip), port: checkPort('service', a.port), proto: checkProto('service', a.proto) };
}

function parseOne(s: Service): Parsed {
  const key = parseAddr(s);
  if (!s.backend || typeof s.backend !== 'object') throw new TypeError('service: no backend');
  const backend = { ip: checkIp('backend', s.backend.ip), port: checkPort('backend', s.backend.port) };
  const f: Service = { vip: s.vip, port: s.port, proto: protoOf(key.proto), backend: { ip: s.backend.ip, port: s.backend.port } };
  return { s: f, key, backend, rkey: { ...backend, proto: key.proto }, id: rawId(key), bid: rawBid(backend, key.proto) };
}

/**
 * The services of one load balancer: service_map (service → backend),
 * reverse_map (backend → service, for replies), service_hits and
 * dnat_stats. Every write validates all of its input and checks for
 * conflicts first, then writes the reverse entries before the forward ones
 * (so a forwarded packet's reply always finds its service) and undoes what
 * it wrote if the kernel refuses (map full): a failed call changes nothing.
 * Two processes may edit the same maps; each call reads the kernel's state.
 */
export class ServiceTable {
  private constructor(
    private readonly services: BpfMap<RawKey, RawBackend>,
    private readonly reverse: BpfMap<RawBackendKey, RawKey>,
    private readonly hitsMap: PerCpuMap<RawKey, Counter>,
    private readonly statsMap: PerCpuMap<number, number>,
    /** Where the maps are pinned (when opened from a pin directory or pinned). */
    public pinDir?: string,
  ) {}

  /** The tables of a loaded xdp_dnat object (closed with the object). Throws a BpfError. */
  static fromObject(obj: BpfObject): ServiceTable {
    return new ServiceTable(
      obj.map(MAPS.services, serviceKeyStruct, backendStruct),
      obj.map(MAPS.reverse, backendKeyStruct, serviceKeyStruct),
      obj.perCpuMap(MAPS.hits, serviceKeyStruct, serviceCounterStruct),
      obj.perCpuMap(MAPS.stats, u32, u64),
    );
  }

  /**
   * Opens the maps a running loader pinned in `dir`. Throws a BpfError:
   * ENOENT when nothing is pinned there, ESRCH when the loader that pinned
   * them is gone (no loaded program uses them any more).
   */
  static openPinned(dir: string): ServiceTable {
    PINS.assertAlive(dir);
    const opened: Array<{ close(): void }> = [];
    try {
      const services = BpfMap.openPinned(join(dir, MAPS.services), serviceKeyStruct, backendStruct);
      opened.push(services);
      const reverse = BpfMap.openPinned(join(dir, MAPS.reverse), backendKeyStruct, serviceKeyStruct);
      opened.push(reverse);
      const hits = PerCpuMap.openPinned(join(dir, MAPS.hits), serviceKeyStruct, serviceCounterStruct);
      opened.push(hits);
      const stats = PerCpuMap.openPinned(join(dir, MAPS.stats), u32, u64);
      return new ServiceTable(services, reverse, hits, stats, dir);
    } catch (e) {
      for (const m of opened) m.close();
      throw e;
    }
  }

  /**
   * Pins the four maps in `dir` (created if needed; it must be on a bpffs),
   * replacing pins left there by a loader that died. Throws a BpfError:
   * EBUSY when a running loader uses `dir`, EPERM when `dir` is not on bpffs.
   */
  pin(dir: string): void {
    PINS.pin(dir, { [MAPS.services]: this.services, [MAPS.reverse]: this.reverse, [MAPS.hits]: this.hitsMap, [MAPS.stats]: this.statsMap });
    this.pinDir = dir;
  }

  /** Removes the pins made by pin() and every directory that leaves empty. Safe to call twice. */
  unpin(): void {
    const dir = this.pinDir;
    if (!dir) return;
    this.pinDir = undefined;
    PINS.unpin(dir, Object.values(MAPS));
  }

  /** The backend of a service, or undefined. Throws a TypeError/RangeError for a bad address, port or protocol, a BpfError. */
  get(addr: ServiceAddr): BackendAddr | undefined {
    const b = this.services.get(parseAddr(addr));
    return b && friendlyBackend(b);
  }

  /** Every service with its hits, sorted by VIP, port, protocol. Throws a BpfError. */
  list(): ServiceEntry[] {
    const all = this.readAll().sort(([a], [b]) => a.vip - b.vip || a.port - b.port || a.proto - b.proto);
    return all.map(([k, b]) => ({ ...friendlyKey(k), backend: friendlyBackend(b), ...this.rawHits(k) }));
  }

  /** Number of services. Throws a BpfError. */
  count(): number {
    return this.readAll().length;
  }

  private readAll(): Array<[RawKey, RawBackend]> {
    return this.services.readAll().entries;
  }

  private rawHits(k: RawKey): Counter {
    let packets = 0;
    let bytes = 0;
    for (const c of this.hitsMap.get(k) ?? []) { packets += c.packets; bytes += c.bytes; }
    return { packets, bytes };
  }

  /** Hits of one service (packets and bytes summed over CPUs). Throws a TypeError/RangeError for a bad address, a BpfError. */
  hits(addr: ServiceAddr): Counter {
    return this.rawHits(parseAddr(addr));
  }

  /** The per-reason counters, summed over CPUs. Throws a BpfError. */
  stats(): DnatStats {
    const out = {} as DnatStats;
    DNAT_REASONS.forEach((r, i) => { out[r] = this.statsMap.sum(i); });
    return out;
  }

  /** Adds a service; throws a BpfError (EEXIST) when it exists, or when its backend serves another service. See write(). */
  add(s: Service): void {
    this.write([s], 'add');
  }

  /** Changes the backend of an existing service; throws a BpfError (ENOENT) when there is none. See write(). */
  change(s: Service): void {
    this.write([s], 'change');
  }

  /** Adds or changes a service. See write(). */
  set(s: Service): void {
    this.write([s], 'set');
  }

  /**
   * Writes services, all or nothing. Validates every one (TypeError or
   * RangeError for a bad address, port or protocol), refuses duplicates in
   * the list, existing services in mode 'add', missing ones in mode
   * 'change', and a backend that already serves another service (BpfError
   * EEXIST/ENOENT), then writes (one batch per map when given several) and
   * undoes everything if the kernel refuses (BpfError E2BIG: map full).
   */
  write(list: Service[], mode: WriteMode = 'set'): void {
    const verb = mode === 'change' ? 'change' : 'add';
    const { svcs, byId, byBid, op } = checkList(list, verb);
    if (svcs.length === 0) return;
    // The current state: what this write touches, and every VIP and backend address (no backend may be a VIP).
    const batch = svcs.length > 1;
    const all = this.readAll();
    const current = new Map<string, RawBackend>();
    for (const [k, b] of all) current.set(rawId(k), b);
    const currentOf = (k: RawKey) => (batch ? current.get(rawId(k)) : this.services.get(k));
    checkVipsAndBackends(op, [...all.filter(([k]) => !byId.has(rawId(k))), ...svcs.map((p) => [p.key, p.backend] as [RawKey, RawBackend])]);
    const olds = svcs.map((p) => currentOf(p.key));
    svcs.forEach((p, i) => {
      const old = olds[i];
      if (mode === 'add' && old) throw new BpfError(op, Errno.EEXIST, `service ${keyId(p.s)} exists (→ ${formatBackend(friendlyBackend(old))}); use change`);
      if (mode === 'change' && !old) throw new BpfError(op, Errno.ENOENT, `no service ${keyId(p.s)}; use add`);
    });
    // A backend serves one service: who owns each backend now?
    const revOld = svcs.map((p) => this.reverse.get(p.rkey));
    svcs.forEach((p, i) => {
      const owner = revOld[i];
      if (!owner || rawId(owner) === p.id) return;
      // Does the owner still map to this backend after this write? (It may move away in this same write, or be a stale entry.)
      const ownerNext = byId.get(rawId(owner))?.backend ?? currentOf(owner);
      if (sameRaw(ownerNext, p.backend)) {
        throw new BpfError(op, Errno.EEXIST, `backend ${backendId(p.s.backend, p.s.proto)} already serves ${keyId(friendlyKey(owner))} (a backend serves one service)`);
      }
    });
    // Write: reverse first, then forward; undo on failure.
    const undoRev = () => svcs.forEach((p, i) => restore(this.reverse, p.rkey, revOld[i]));
    const undoFwd = () => svcs.forEach((p, i) => restore(this.services, p.key, olds[i]));
    try {
      if (batch) this.reverse.updateBatch(svcs.map((p) => [p.rkey, p.key] as const));
      else this.reverse.set(svcs[0].rkey, svcs[0].key);
    } catch (e) {
      undoRev();
      throw fullError(op, e, MAPS.reverse);
    }
    try {
      if (batch) this.services.updateBatch(svcs.map((p) => [p.key, p.backend] as const));
      else this.services.set(svcs[0].key, svcs[0].backend);
    } catch (e) {
      undoFwd();
      undoRev();
      throw fullError(op, e, MAPS.services);
    }
    // Backends that changed: their old reverse entry goes (if it still points here).
    svcs.forEach((p, i) => {
      const old = olds[i];
      if (!old || sameRaw(old, p.backend)) return;
      if (byBid.has(rawBid(old, p.key.proto))) return; // taken over in this write
      const ok = { ...old, proto: p.key.proto };
      const owner = this.reverse.get(ok);
      if (owner && rawId(owner) === p.id) this.reverse.delete(ok);
    });
    // New services count from zero.
    svcs.forEach((p, i) => { if (!olds[i]) this.hitsMap.delete(p.key); });
  }

  /**
   * Removes services, all or nothing: throws a BpfError (ENOENT) naming the
   * first that does not exist before removing any, a TypeError/RangeError
   * for a bad address.
   */
  remove(addrs: ServiceAddr | ServiceAddr[]): void {
    const keys = (Array.isArray(addrs) ? addrs : [addrs]).map(parseAddr);
    this.removeRaw(keys);
  }

  private removeRaw(keys: RawKey[]): void {
    const backends = keys.map((k) => this.services.get(k));
    keys.forEach((k, i) => {
      if (!backends[i]) {
        const id = keyId(friendlyKey(k));
        throw new BpfError(`remove service ${id}`, Errno.ENOENT, `no service ${id}`);
      }
    });
    keys.forEach((k, i) => {
      this.services.delete(k);
      const bk = { ...backends[i]!, proto: k.proto };
      const owner = this.reverse.get(bk);
      if (owner && rawId(owner) === rawId(k)) this.reverse.delete(bk);
      this.hitsMap.delete(k);
    });
  }

  /** Removes every service. Throws a BpfError. */
  clear(): void {
    const all = this.readAll().map(([k]) => k);
    if (all.length) this.removeRaw(all);
  }

  /** Closes the maps (when opened from pins; maps of an object close with it). Safe to call twice. */
  close(): void {
    this.services.close();
    this.reverse.close();
    this.hitsMap.close();
    this.statsMap.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Parses and checks a list of services against itself (see validateServices); `verb` names the operation in errors. */
function checkList(list: Service[], verb: string): { svcs: Parsed[]; byId: Map<string, Parsed>; byBid: Map<string, Parsed>; op: string } {
  const svcs = list.map(parseOne);
  const op = svcs.length === 1 ? `${verb} service ${keyId(svcs[0].s)}` : `${verb} ${svcs.length} services`;
  const byId = new Map<string, Parsed>();
  const byBid = new Map<string, Parsed>();
  for (const p of svcs) {
    if (byId.has(p.id)) throw new BpfError(op, Errno.EINVAL, `service ${keyId(p.s)} is listed twice`);
    byId.set(p.id, p);
    const other = byBid.get(p.bid);
    if (other) throw new BpfError(op, Errno.EEXIST, `backend ${backendId(p.s.backend, p.s.proto)} is listed for both ${keyId(other.s)} and ${keyId(p.s)} (a backend serves one service)`);
    byBid.set(p.bid, p);
  }
  checkVipsAndBackends(op, svcs.map((p) => [p.key, p.backend]));
  return { svcs, byId, byBid, op };
}

/** Refuses a backend whose address is a VIP of a service in `entries` (packets for it would be load balanced again). */
function checkVipsAndBackends(op: string, entries: Array<[RawKey, RawBackend]>): void {
  const vips = new Map<number, RawKey>();
  for (const [k] of entries) if (!vips.has(k.vip)) vips.set(k.vip, k);
  for (const [k, b] of entries) {
    const owner = vips.get(b.ip);
    if (owner) {
      throw new BpfError(op, Errno.EINVAL, `backend ${formatIpv4(b.ip)} of ${keyId(friendlyKey(k))} is a service address (VIP of ${keyId(friendlyKey(owner))}); a backend must be a real host`);
    }
  }
}

/**
 * Checks a list of services without touching any map: every address
 * (one host's: not 0.0.0.0/8, multicast, reserved or broadcast), port and
 * protocol (TypeError/RangeError naming the bad one), no service twice, no
 * backend for two services, no backend that is a VIP (BpfError EINVAL or
 * EEXIST). What a loader runs on its --service list before loading anything.
 */
export function validateServices(list: Service[]): void {
  checkList(list, 'check');
}

function restore<K, V>(m: BpfMap<K, V>, k: K, old: V | undefined): void {
  try {
    if (old === undefined) m.delete(k);
    else m.set(k, old);
  } catch { /* best effort: the original error is what matters */ }
}

function fullError(op: string, e: unknown, map: string): unknown {
  if (!(e instanceof BpfError) || e.errno !== Errno.E2BIG) return e;
  return new BpfError(op, Errno.E2BIG, map === MAPS.services ? `${map} is full (${MAX_SERVICES} services)` : `${map} is full (${2 * MAX_SERVICES} entries)`);
}

/**
 * A service of the load balancer's model (src/lb/model.ts) as this data
 * plane's one-backend service. Throws a RangeError when it has not exactly
 * one backend (the Maglev data plane lifts this), or a weight other than 1.
 */
export function fromLbService(s: LbService): Service {
  const n = s.backends?.length ?? 0;
  if (n !== 1) throw new RangeError(`service ${formatServiceAddr(s)}: ${n} backends; this data plane takes exactly one per service (the Maglev data plane of issue 12 lifts this)`);
  const b = s.backends[0];
  if ((b.weight ?? 1) !== 1) throw new RangeError(`service ${formatServiceAddr(s)}: weight ${b.weight}; this data plane has one backend per service and no weights`);
  return { vip: s.vip, port: s.port, proto: s.proto, backend: { ip: b.ip, port: b.port } };
}

/** A one-backend service in the load balancer's model (weight 1). */
export function toLbService(s: Service): Required<LbService> {
  return { vip: s.vip, port: s.port, proto: s.proto, backends: [{ ip: s.backend.ip, port: s.backend.port, weight: 1 }] };
}

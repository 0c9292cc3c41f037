/**
 * The desired state kept up to date one Service at a time, so that one
 * EndpointSlice change costs the translation of one Service, not of the
 * whole cluster.
 *
 * translate.ts's desiredState() works on the whole state; every Service's
 * part of its result depends only on that Service and its slices, except
 * for two rules between Services (a VIP:port/proto claimed twice, a backend
 * that is some Service's VIP). So this cache keeps, per Service, the result
 * of desiredState([service], its slices), recomputed only for Services an
 * event touched; the whole result is the parts in namespace/name order.
 * The two rules are watched with counters; while any of them applies, the
 * whole state goes through desiredState() at once instead (correct, just
 * slower), so the result is always what desiredState() gives for the same
 * objects. So does a computation with many Services to translate (the
 * first list): one whole-state call is faster than as many one-Service
 * calls; the parts are then filled in the background.
 */
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import type { Service } from '../lb/model.js';
import { SERVICE_NAME_LABEL, desiredState, type DesiredState, type Skipped } from './translate.js';

interface Entry {
  ns: string;
  name: string;
  svc?: V1Service;
  /** Its slices by slice name. */
  slices: Map<string, V1EndpointSlice>;
  /** desiredState of this Service alone; undefined: to compute. */
  part?: DesiredState;
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Dirty Services from which compute() makes one whole-state call instead. */
const BULK = 1000;
/** Parts computed per turn of the event loop in the background fill. */
const WARM_CHUNK = 500;

function metaOf(o: V1Service | V1EndpointSlice): { ns: string; name: string } {
  return { ns: o.metadata?.namespace ?? '', name: o.metadata?.name ?? '' };
}

/**
 * Services and EndpointSlices as the informers report them (put/remove for
 * every event), and the desired state computed from them incrementally
 * (see the file's header). Needs no kernel.
 */
export class DesiredCache {
  private readonly entries = new Map<string, Entry>();
  /** slice "ns/name" → the entry key ("ns/service") it was filed under. */
  private readonly sliceOwner = new Map<string, string>();
  private readonly dirty = new Set<string>();
  private order?: Entry[];
  // Counters of the rules between Services, over the parts in use.
  private readonly keyCount = new Map<string, number>();
  private readonly vipCount = new Map<string, number>();
  private readonly backendIpCount = new Map<string, number>();
  private dupKeys = 0;
  private overlaps = 0;
  /** Whole-state computations (bulk, or a rule between Services), for tests and figures. */
  fullRuns = 0;
  private warming?: NodeJS.Immediate;

  private entry(key: string, ns: string, name: string): Entry {
    let e = this.entries.get(key);
    if (!e) {
      e = { ns, name, slices: new Map() };
      this.entries.set(key, e);
    }
    return e;
  }

  private touch(key: string): void {
    this.dirty.add(key);
  }

  /** A Service added or changed. */
  putService(svc: V1Service): void {
    const { ns, name } = metaOf(svc);
    const key = `${ns}/${name}`;
    const e = this.entry(key, ns, name);
    if (!e.svc) this.order = undefined;
    e.svc = svc;
    this.touch(key);
  }

  /** A Service deleted. */
  removeService(svc: V1Service): void {
    const { ns, name } = metaOf(svc);
    const key = `${ns}/${name}`;
    const e = this.entries.get(key);
    if (!e?.svc) return;
    e.svc = undefined;
    this.order = undefined;
    this.touch(key);
  }

  /** An EndpointSlice added or changed (filed under its kubernetes.io/service-name label). */
  putSlice(slice: V1EndpointSlice): void {
    const { ns, name } = metaOf(slice);
    const sliceKey = `${ns}/${name}`;
    this.unfile(sliceKey);
    const svcName = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
    if (typeof svcName !== 'string' || svcName === '') return;
    const key = `${ns}/${svcName}`;
    this.entry(key, ns, svcName).slices.set(name, slice);
    this.sliceOwner.set(sliceKey, key);
    this.touch(key);
  }

  /** An EndpointSlice deleted. */
  removeSlice(slice: V1EndpointSlice): void {
    const { ns, name } = metaOf(slice);
    this.unfile(`${ns}/${name}`);
  }

  private unfile(sliceKey: string): void {
    const owner = this.sliceOwner.get(sliceKey);
    if (owner === undefined) return;
    this.sliceOwner.delete(sliceKey);
    const e = this.entries.get(owner);
    if (e) {
      e.slices.delete(sliceKey.slice(sliceKey.indexOf('/') + 1));
      this.touch(owner);
    }
  }

  /** Services held. */
  get services(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.svc) n++;
    return n;
  }

  /** The desired state of everything put so far (what desiredState() gives for the same objects). */
  compute(): DesiredState {
    // Many Services to (re)translate at once (the first list, a relist): one
    // whole-state call is several times faster than as many one-Service
    // calls; the per-Service parts are filled in afterwards, in the
    // background (warm), for the changes that follow.
    if (this.dirty.size >= BULK) {
      this.warm();
      return this.whole();
    }
    for (const key of this.dirty) this.refresh(key);
    this.dirty.clear();
    if (this.dupKeys > 0 || this.overlaps > 0) return this.whole();
    if (!this.order) {
      this.order = [...this.entries.values()].sort((a, b) => cmp(a.ns, b.ns) || cmp(a.name, b.name));
    }
    const services: Service[] = [];
    const skipped: Skipped[] = [];
    for (const e of this.order) {
      if (!e.part) continue;
      for (const s of e.part.services) services.push(s);
      for (const s of e.part.skipped) skipped.push(s);
    }
    return { services, skipped };
  }

  /** Parts still to compute (the background fill after a bulk computation). */
  get pending(): number {
    return this.dirty.size;
  }

  /** Computes the parts of dirty Services in chunks, on later turns of the event loop, until none is left. */
  private warm(): void {
    if (this.warming) return;
    this.warming = setImmediate(() => {
      this.warming = undefined;
      let n = 0;
      for (const key of this.dirty) {
        this.refresh(key);
        this.dirty.delete(key);
        if (++n >= WARM_CHUNK) break;
      }
      if (this.dirty.size > 0) this.warm();
    });
  }

  /** Recomputes the part of one Service (dropping the entry once it has neither a Service nor slices). */
  private refresh(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    if (e.part) this.count(e.part.services, -1);
    e.part = undefined;
    if (!e.svc) {
      if (e.slices.size === 0) {
        this.entries.delete(key);
        this.order = undefined;
      }
      return;
    }
    e.part = desiredState([e.svc], e.slices.values());
    this.count(e.part.services, 1);
  }

  /** desiredState() of everything held, in one call. */
  private whole(): DesiredState {
    this.fullRuns++;
    const svcs: V1Service[] = [];
    const slices: V1EndpointSlice[] = [];
    for (const e of this.entries.values()) {
      if (e.svc) svcs.push(e.svc);
      for (const s of e.slices.values()) slices.push(s);
    }
    return desiredState(svcs, slices);
  }

  private count(services: readonly Service[], d: 1 | -1): void {
    for (const s of services) {
      const key = `${s.vip}:${s.port}/${s.proto}`;
      const k = (this.keyCount.get(key) ?? 0) + d;
      if (d > 0 && k === 2) this.dupKeys++;
      if (d < 0 && k === 1) this.dupKeys--;
      if (k === 0) this.keyCount.delete(key); else this.keyCount.set(key, k);
      this.bump(this.vipCount, s.vip, d, this.backendIpCount);
      for (const b of s.backends) this.bump(this.backendIpCount, b.ip, d, this.vipCount);
    }
  }

  /** Counts `ip` in `mine`; an ip present in both maps is an overlap (a backend that is a VIP). */
  private bump(mine: Map<string, number>, ip: string, d: 1 | -1, other: Map<string, number>): void {
    const n = (mine.get(ip) ?? 0) + d;
    if (n === 0) mine.delete(ip); else mine.set(ip, n);
    if (other.has(ip)) {
      if (d > 0 && n === 1) this.overlaps++;
      if (d < 0 && n === 0) this.overlaps--;
    }
  }
}

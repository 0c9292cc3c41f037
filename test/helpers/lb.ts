/**
 * A minimal writer of the load balancer's maps for tests and benches: ids
 * allocated in order, a lookup table from a builder given as a function
 * (the contract's buildMaglev signature), written through the data plane's
 * writeServiceRaw in the order the data plane needs.
 */
import { parseIpv4 } from '../../src/codec.js';
import {
  LB_MAGLEV_SIZE, roundRobinTable, writeServiceRaw, type DataPlaneMaps, type ServiceKey,
} from '../../src/lb/dataplane.js';

/** What a table builder gets: the contract's buildMaglev input. */
export type TableBuilder = (backends: Array<{ id: number; key: string; weight: number }>, size?: number) => Uint32Array;

/** Round robin by weight (not consistent): the stand-in builder. */
export const roundRobin: TableBuilder = (bs) => roundRobinTable(bs.map((b) => b.id), bs.map((b) => b.weight));

/** A backend as tests give it: "ip:port" and an optional weight. */
export interface TestBackend { addr: string; weight?: number }

interface Svc { id: number; key: ServiceKey; backends: Array<{ id: number; addr: string; weight: number }> }

/** Services written straight into a data plane's maps. */
export class TestLb {
  #nextBackend = 1;
  #nextService = 0;
  readonly services = new Map<string, Svc>();

  constructor(readonly maps: DataPlaneMaps, readonly build: TableBuilder = roundRobin) {}

  /** Adds (or replaces the backends of) service "vip:port/proto"; returns its id. */
  set(service: string, backends: TestBackend[]): number {
    const m = /^([\d.]+):(\d+)\/(tcp|udp)$/.exec(service);
    if (!m) throw new Error(`bad service ${service}`);
    const key = { vip: parseIpv4(m[1]), port: Number(m[2]), proto: m[3] === 'tcp' ? 6 : 17 };
    const old = this.services.get(service);
    const id = old?.id ?? this.#nextService++;
    const bs = backends.map((b) => {
      const kept = old?.backends.find((x) => x.addr === b.addr);
      return { id: kept?.id ?? this.#nextBackend++, addr: b.addr, weight: b.weight ?? 1 };
    });
    const table = bs.length === 0 ? new Uint32Array(LB_MAGLEV_SIZE) : this.build(bs.map((b) => ({ id: b.id, key: b.addr, weight: b.weight })), LB_MAGLEV_SIZE);
    writeServiceRaw(this.maps, key, id, bs.map((b) => {
      const [ip, port] = b.addr.split(':');
      return { id: b.id, ip: parseIpv4(ip), port: Number(port) };
    }), table);
    // Backends that left: zeroed after the table no longer names them.
    for (const b of old?.backends ?? []) {
      if (!bs.some((x) => x.id === b.id)) this.maps.backends.set(b.id, { ip: 0, port: 0, flags: 0 });
    }
    this.services.set(service, { id, key, backends: bs });
    return id;
  }

  /** The backend id of "ip:port" in a service. */
  backendId(service: string, addr: string): number {
    const b = this.services.get(service)?.backends.find((x) => x.addr === addr);
    if (!b) throw new Error(`no backend ${addr} in ${service}`);
    return b.id;
  }

  /** Removes a service: its map entry, then its backends. */
  remove(service: string): void {
    const s = this.services.get(service);
    if (!s) return;
    this.maps.services.delete(s.key);
    for (const b of s.backends) this.maps.backends.set(b.id, { ip: 0, port: 0, flags: 0 });
    this.services.delete(service);
  }
}

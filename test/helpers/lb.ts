/**
 * Services for data plane tests, written through the library's
 * ServiceTable (Maglev tables, ids, the contract's write order): set() and
 * remove() change one service of a desired state that is applied whole.
 */
import { ServiceTable } from '../../src/lb/table.js';
import type { Service } from '../../src/lb/model.js';
import type { DataPlaneMaps } from '../../src/lb/dataplane.js';

/** A backend as tests give it: "ip:port" and an optional weight. */
export interface TestBackend { addr: string; weight?: number }

/** A desired state of services, applied through a ServiceTable on a data plane's maps. */
export class TestLb {
  readonly table: ServiceTable;
  readonly #desired = new Map<string, Service>();

  constructor(readonly maps: DataPlaneMaps) {
    this.table = new ServiceTable(maps);
  }

  /** Adds service "vip:port/proto" or replaces its backends; applies the whole state. Returns the service's id. */
  set(service: string, backends: TestBackend[]): number {
    const m = /^([\d.]+):(\d+)\/(tcp|udp)$/.exec(service);
    if (!m) throw new Error(`bad service ${service}`);
    this.#desired.set(service, {
      vip: m[1], port: Number(m[2]), proto: m[3] as 'tcp' | 'udp',
      backends: backends.map((b) => { const [ip, port] = b.addr.split(':'); return { ip, port: Number(port), weight: b.weight ?? 1 }; }),
    });
    this.table.apply([...this.#desired.values()]);
    return this.#entry(service).id;
  }

  #entry(service: string) {
    const e = this.table.list().find((x) => `${x.vip}:${x.port}/${x.proto}` === service);
    if (!e) throw new Error(`no service ${service}`);
    return e;
  }

  /** The id of a service. */
  serviceId(service: string): number {
    return this.#entry(service).id;
  }

  /** The backend id of "ip:port" in a service. */
  backendId(service: string, addr: string): number {
    const b = this.#entry(service).backends.find((x) => `${x.ip}:${x.port}` === addr);
    if (!b) throw new Error(`no backend ${addr} in ${service}`);
    return b.id;
  }

  /** Removes a service. */
  remove(service: string): void {
    this.#desired.delete(service);
    this.table.apply([...this.#desired.values()]);
  }
}

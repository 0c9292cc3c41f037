/**
 * Services for data plane tests, written through the library's
 * ServiceTable (Maglev tables, ids, the contract's write order): set() and
 * remove() change one service of a desired state that is applied whole.
 */
import { ServiceTable } from '../../src/lb/table.js';
import type { Service } from '../../src/lb/model.js';
import type { DataPlaneMaps } from '../../src/lb/dataplane.js';
import { run, runNs, type DnatLab } from '../../src/lab/index.js';
import { addNs, delNs, sysctl, waitUp } from '../../src/lab/netns.js';

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

/**
 * One more backend namespace behind a dnat lab's load balancer:
 * `<lab prefix>-be<i>` with eth0 10.244.<i>.5/24, its peer lb<i>
 * 10.244.<i>.1/24 in the lab's lb namespace (rp_filter off, IPv6 off), GRO
 * on its eth0 (native XDP redirects land there), default route via lb.
 * Removes a leftover of the same name first. Resolves with its name; the
 * caller removes it (delNs) before the lab goes down.
 */
export async function addBackendNs(lab: DnatLab, i: number): Promise<string> {
  const ns = `${lab.backend.replace(/-backend$/, '')}-be${i}`;
  await delNs(ns);
  await addNs(ns);
  await run(['ip', '-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `lb${i}`, 'netns', lab.lb]);
  await sysctl(lab.lb, { [`net.ipv4.conf.lb${i}.rp_filter`]: 0, [`net.ipv6.conf.lb${i}.disable_ipv6`]: 1 });
  await sysctl(ns, { 'net.ipv6.conf.eth0.disable_ipv6': 1 });
  await run(['ip', '-n', lab.lb, 'addr', 'add', `10.244.${i}.1/24`, 'dev', `lb${i}`]);
  await run(['ip', '-n', ns, 'addr', 'add', `10.244.${i}.5/24`, 'dev', 'eth0']);
  await run(['ip', '-n', lab.lb, 'link', 'set', 'dev', `lb${i}`, 'up']);
  await run(['ip', '-n', ns, 'link', 'set', 'dev', 'eth0', 'up']);
  await runNs(ns, ['ethtool', '-K', 'eth0', 'gro', 'on']);
  await run(['ip', '-n', ns, 'route', 'add', 'default', 'via', `10.244.${i}.1`]);
  await waitUp(ns, ['eth0']);
  return ns;
}

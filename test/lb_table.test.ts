/**
 * ServiceTable (src/lb/table.ts) on real kernel maps created as the
 * contract declares them (HASH service_map, ARRAY backend_map, ARRAY
 * maglev_map of 1021-slot tables, PERCPU_ARRAY service_hits): apply from
 * empty, apply a change (only the changed Maglev tables rewritten, ids kept),
 * removal (backends zeroed, ids reused only later), adoption by a second
 * table over the same maps, drained backends, leftovers of an interrupted
 * write, and bad input that changes nothing.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BpfError, parseIpv4 } from '../src/index.js';
import { BpfMap, MapType } from '../src/map.js';
import { u32 } from '../src/codec.js';
import { BACKEND_F_ACTIVE, LB_GLOBALS_MAP, LB_MAGLEV_SIZE, LB_MAPS, closeLbMaps, createLbMaps, lbGlobalsStruct, type LbMaps } from '../src/lb/layout.js';
import { ServiceTable } from '../src/lb/table.js';
import { parseService, type Service } from '../src/lb/model.js';
import { kernelTests, removePins } from './helpers/kernel.js';

const M = LB_MAGLEV_SIZE;
const svc = (text: string) => parseService(text);
const A = '10.96.0.10:80/tcp=10.244.1.5:8080,10.244.1.6:8080*2,10.244.1.7:8080*3';
const B = '10.96.0.11:53/udp=10.244.2.5:5353';
const C = '10.96.0.12:443/tcp=10.244.3.5:8443,10.244.3.6:8443';

/** Every entry of every map, raw: what "changes nothing" compares. */
function dump(m: LbMaps): string {
  const services = m.services.readAll().entries.map(([k, v]) => `${k.vip}:${k.port}:${k.proto}=${v.id}/${v.backend_count}`).sort();
  const backends = m.backends.readAll().entries.filter(([, b]) => b.flags !== 0 || b.ip !== 0).map(([id, b]) => `${id}=${JSON.stringify(b)}`);
  const maglev = m.maglev.readAll().entries.map(([id, t]) => `${id}:${Buffer.from(t.buffer).toString('base64')}`);
  return JSON.stringify({ services, backends, maglev });
}

describe.skipIf(!kernelTests())('ServiceTable on kernel maps', () => {
  let maps: LbMaps;
  let table: ServiceTable;

  beforeEach(() => {
    maps = createLbMaps({ maxServices: 16, maxBackends: 64 });
    table = new ServiceTable(maps);
  });
  afterEach(() => {
    table?.close();
    if (maps) closeLbMaps(maps);
  });

  it('with lb_globals, every apply that writes changes the epoch (the data plane\'s flow cache forgets), keeping fib_generation; one that writes nothing does not', () => {
    const globals = BpfMap.create({ type: MapType.ARRAY, name: LB_GLOBALS_MAP, maxEntries: 1 }, u32, lbGlobalsStruct);
    try {
      globals.set(0, { fib_generation: 7, epoch: 0 });
      const t = new ServiceTable({ ...maps, globals });
      const epochs = [globals.get(0)!.epoch];
      t.apply([svc(A), svc(B)]);
      epochs.push(globals.get(0)!.epoch);
      t.apply([svc(A), svc(B)]); // nothing changed: nothing written
      epochs.push(globals.get(0)!.epoch);
      t.apply([svc(A)]); // B removed
      epochs.push(globals.get(0)!.epoch);
      t.apply([svc('10.96.0.10:80/tcp=10.244.1.5:8080,10.244.1.6:8080*2')]); // a backend gone
      epochs.push(globals.get(0)!.epoch);
      expect(epochs[1]).not.toBe(epochs[0]);
      expect(epochs[2]).toBe(epochs[1]);
      expect(epochs[3]).not.toBe(epochs[2]);
      expect(epochs[4]).not.toBe(epochs[3]);
      expect(globals.get(0)!.fib_generation).toBe(7);
    } finally {
      globals.close();
    }
  });

  it('applies a full state to empty maps: ids from the lowest, backends active with service and weight, full Maglev tables by weight', () => {
    expect(table.size).toBe(0);
    const r = table.apply([svc(A), svc(B), svc(C)]);
    expect(r).toEqual({ servicesAdded: 3, servicesChanged: 0, servicesRemoved: 0, servicesUnchanged: 0, backendsAdded: 6, backendsChanged: 0, backendsRemoved: 0, maglevWritten: 3 });
    const info = maps.services.get({ vip: parseIpv4('10.96.0.10'), port: 80, proto: 6 });
    expect(info).toEqual({ id: 0, backend_count: 3 });
    expect(maps.services.get({ vip: parseIpv4('10.96.0.11'), port: 53, proto: 17 })).toEqual({ id: 1, backend_count: 1 });
    expect(maps.backends.get(1)).toEqual({ ip: parseIpv4('10.244.1.5'), port: 8080, flags: BACKEND_F_ACTIVE, service_id: 0, weight: 1 });
    expect(maps.backends.get(3)).toEqual({ ip: parseIpv4('10.244.1.7'), port: 8080, flags: BACKEND_F_ACTIVE, service_id: 0, weight: 3 });
    expect(maps.backends.get(0)).toEqual({ ip: 0, port: 0, flags: 0, service_id: 0, weight: 0 });
    const t0 = maps.maglev.get(0)!;
    const counts = [1, 2, 3].map((id) => t0.filter((x) => x === id).length);
    expect(counts.reduce((a, b) => a + b)).toBe(M);
    counts.forEach((c, i) => expect(Math.abs(c / M - (i + 1) / 6)).toBeLessThan(0.01));
    expect(maps.maglev.get(1)!.every((x) => x === 4)).toBe(true);
    // list(): sorted, with ids, weights and each backend's share as the kernel map holds it.
    const l = table.list();
    expect(l.map((e) => `${e.vip}:${e.port}/${e.proto}#${e.id}`)).toEqual(['10.96.0.10:80/tcp#0', '10.96.0.11:53/udp#1', '10.96.0.12:443/tcp#2']);
    expect(l[0].backends.map((b) => [b.ip, b.weight, b.id, b.slots])).toEqual([['10.244.1.5', 1, 1, counts[0]], ['10.244.1.6', 2, 2, counts[1]], ['10.244.1.7', 3, 3, counts[2]]]);
    expect(l[0].backends.reduce((a, b) => a + b.share, 0)).toBeCloseTo(1, 9);
    expect(l[0]).toMatchObject({ packets: 0, bytes: 0 });
    expect(table.services()).toEqual([svc(A), svc(B), svc(C)]);
  });

  it('applies a change: only the changed Maglev table is rewritten, ids stay, removed backends are zeroed', () => {
    table.apply([svc(A), svc(B), svc(C)]);
    // Poison a slot of B's and C's tables: a rewrite of either would erase it.
    for (const id of [1, 2]) {
      const t = maps.maglev.get(id)!;
      t[7] = 999;
      maps.maglev.set(id, t);
    }
    const before = maps.maglev.get(0)!;
    // A: 10.244.1.6 goes, 10.244.1.8 comes, 10.244.1.7's weight 3 → 1. Listed in another order.
    const A2 = '10.96.0.10:80/tcp=10.244.1.8:8080,10.244.1.7:8080,10.244.1.5:8080';
    const r = table.apply([svc(C), svc(A2), svc(B)]);
    expect(r).toEqual({ servicesAdded: 0, servicesChanged: 1, servicesRemoved: 0, servicesUnchanged: 2, backendsAdded: 1, backendsChanged: 1, backendsRemoved: 1, maglevWritten: 1 });
    expect(maps.maglev.get(1)![7]).toBe(999);
    expect(maps.maglev.get(2)![7]).toBe(999);
    const after = maps.maglev.get(0)!;
    expect(after).not.toEqual(before);
    // Ids: 1 and 3 kept, 2 zeroed, the new one got the lowest id free before this write (7; 2 was freed by it).
    expect(maps.backends.get(2)).toEqual({ ip: 0, port: 0, flags: 0, service_id: 0, weight: 0 });
    expect(maps.backends.get(7)).toMatchObject({ ip: parseIpv4('10.244.1.8'), flags: BACKEND_F_ACTIVE, service_id: 0, weight: 1 });
    expect(maps.backends.get(3)).toMatchObject({ weight: 1 });
    expect(new Set(after)).toEqual(new Set([1, 3, 7]));
    // Maglev's promise: slots of backend 1 and 3 that moved are few (not counting slots freed by 2 or taken by the newcomer 7).
    let moved = 0;
    for (let i = 0; i < M; i++) if (before[i] !== 2 && after[i] !== 7 && after[i] !== before[i]) moved++;
    expect(moved / M).toBeLessThan(0.2);
    // The same snapshot again writes nothing.
    expect(table.apply([svc(A2), svc(B), svc(C)])).toMatchObject({ servicesChanged: 0, servicesUnchanged: 3, maglevWritten: 0, backendsAdded: 0, backendsRemoved: 0 });
    // Now id 2 is free: the next new backend takes it.
    table.apply([svc(A2), svc(B), svc(`${C},10.244.3.7:8443`)]);
    expect(maps.backends.get(2)).toMatchObject({ ip: parseIpv4('10.244.3.7'), service_id: 2 });
  });

  it('removes services missing from the snapshot: service_map entry deleted, backends zeroed, service id reused later with zeroed hits', () => {
    table.apply([svc(A), svc(B), svc(C)]);
    maps.hits.set(1, { packets: 5, bytes: 500 });
    const r = table.apply([svc(A), svc(C)]);
    expect(r).toMatchObject({ servicesRemoved: 1, backendsRemoved: 1, maglevWritten: 0, servicesUnchanged: 2 });
    expect(maps.services.get({ vip: parseIpv4('10.96.0.11'), port: 53, proto: 17 })).toBeUndefined();
    expect(maps.backends.get(4)).toEqual({ ip: 0, port: 0, flags: 0, service_id: 0, weight: 0 });
    const D = '10.96.0.13:80/tcp=10.244.4.5:80';
    table.apply([svc(A), svc(C), svc(D)]);
    expect(maps.services.get({ vip: parseIpv4('10.96.0.13'), port: 80, proto: 6 })).toEqual({ id: 1, backend_count: 1 });
    expect(maps.hits.summed(1)).toEqual({ packets: 0, bytes: 0 });
    expect(table.apply([])).toMatchObject({ servicesRemoved: 3, backendsRemoved: 6 });
    expect(maps.services.readAll().entries).toEqual([]);
    expect(maps.backends.readAll().entries.filter(([, b]) => b.flags !== 0)).toEqual([]);
  });

  it('adopts maps another table wrote: same services, weights and ids, and a no-op apply', () => {
    table.apply([svc(A), svc(B), svc(C)]);
    table.apply([svc(A), svc(C)]);
    const listed = table.list();
    const adopted = new ServiceTable(maps);
    expect(adopted.size).toBe(2);
    expect(adopted.list()).toEqual(listed);
    expect(adopted.services()).toEqual([svc(A), svc(C)]);
    const before = dump(maps);
    expect(adopted.apply([svc(C), svc(A)])).toMatchObject({ servicesUnchanged: 2, servicesChanged: 0, maglevWritten: 0, backendsAdded: 0, backendsRemoved: 0 });
    expect(dump(maps)).toBe(before);
    // Freed ids stay free across adoption: B's id 1 and backend id 4 are the lowest free.
    adopted.apply([svc(A), svc(C), svc('10.96.0.20:80/tcp=10.244.9.9:80')]);
    expect(maps.services.get({ vip: parseIpv4('10.96.0.20'), port: 80, proto: 6 })).toEqual({ id: 1, backend_count: 1 });
    expect(maps.backends.get(4)).toMatchObject({ ip: parseIpv4('10.244.9.9'), service_id: 1 });
    // A second writer: the first table sees its changes after refresh().
    adopted.apply([svc(A)]);
    expect(table.size).toBe(2);
    table.refresh();
    expect(table.services()).toEqual([svc(A)]);
  });

  it('drains weight-0 backends (active, no slots) and writes no table for a service with no live backend', () => {
    table.apply([svc('10.96.0.10:80/tcp=10.244.1.5:80,10.244.1.6:80*0')]);
    expect(maps.backends.get(2)).toMatchObject({ flags: BACKEND_F_ACTIVE, weight: 0 });
    expect(new Set(maps.maglev.get(0)!)).toEqual(new Set([1]));
    expect(maps.services.get({ vip: parseIpv4('10.96.0.10'), port: 80, proto: 6 })).toEqual({ id: 0, backend_count: 1 });
    const r = table.apply([svc('10.96.0.10:80/tcp=10.244.1.5:80*0,10.244.1.6:80*0')]);
    expect(r).toMatchObject({ backendsChanged: 1, maglevWritten: 0, servicesChanged: 1 });
    expect(maps.services.get({ vip: parseIpv4('10.96.0.10'), port: 80, proto: 6 })).toEqual({ id: 0, backend_count: 0 });
    expect(table.list()[0].backends.map((b) => b.share)).toEqual([0, 0]);
    // Undrained: the table is rebuilt.
    expect(table.apply([svc('10.96.0.10:80/tcp=10.244.1.5:80,10.244.1.6:80')])).toMatchObject({ maglevWritten: 1 });
    expect(new Set(maps.maglev.get(0)!)).toEqual(new Set([1, 2]));
    // An empty backend list: count 0.
    table.apply([svc('10.96.0.10:80/tcp=')]);
    expect(maps.services.get({ vip: parseIpv4('10.96.0.10'), port: 80, proto: 6 })).toEqual({ id: 0, backend_count: 0 });
  });

  it('zeroes backends an interrupted write left active without a service', () => {
    table.apply([svc(B)]);
    maps.backends.set(9, { ip: parseIpv4('10.244.7.7'), port: 80, flags: BACKEND_F_ACTIVE, service_id: 5, weight: 1 });
    const adopted = new ServiceTable(maps);
    expect(adopted.services()).toEqual([svc(B)]);
    expect(adopted.apply([svc(B)])).toMatchObject({ backendsRemoved: 1, servicesUnchanged: 1 });
    expect(maps.backends.get(9)).toEqual({ ip: 0, port: 0, flags: 0, service_id: 0, weight: 0 });
  });

  it('add, change, set, remove single services, all or nothing', () => {
    table.add(svc(A));
    expect(() => table.add([svc(B), svc(A)])).toThrow('add 2 services: service 10.96.0.10:80/tcp exists; use change or set (EEXIST)');
    expect(table.size).toBe(1);
    expect(() => table.change(svc(B))).toThrow('change service 10.96.0.11:53/udp: no service 10.96.0.11:53/udp; use add (ENOENT)');
    table.set([svc(B), svc(C)]);
    expect(table.change(svc('10.96.0.11:53/udp=10.244.2.5:5353*4'))).toMatchObject({ backendsChanged: 1, maglevWritten: 0, servicesChanged: 1 });
    expect(table.get({ vip: '10.96.0.11', port: 53, proto: 'udp' })?.backends).toEqual([{ ip: '10.244.2.5', port: 5353, weight: 4 }]);
    expect(() => table.remove([{ vip: '10.96.0.11', port: 53, proto: 'udp' }, { vip: '10.96.0.99', port: 1, proto: 'tcp' }])).toThrow('remove 2 services: no service 10.96.0.99:1/tcp (ENOENT)');
    expect(table.size).toBe(3);
    expect(table.remove({ vip: '10.96.0.11', port: 53, proto: 'udp' })).toMatchObject({ servicesRemoved: 1 });
    expect(table.services().map((s) => s.vip)).toEqual(['10.96.0.10', '10.96.0.12']);
    table.clear();
    expect(table.size).toBe(0);
    // A snapshot after single writes: what remove() and change() did is not mistaken for unchanged.
    table.apply([svc(A), svc(B)]);
    table.remove({ vip: '10.96.0.11', port: 53, proto: 'udp' });
    table.change(svc('10.96.0.10:80/tcp=10.244.1.5:8080'));
    expect(table.apply([svc(A), svc(B)])).toMatchObject({ servicesAdded: 1, servicesChanged: 1, servicesUnchanged: 0 });
    expect(table.services()).toEqual([svc(A), svc(B)]);
  });

  it('refuses bad input in one line and changes nothing', () => {
    table.apply([svc(A), svc(B)]);
    const before = dump(maps);
    const base = table.services();
    const bad: Array<[Service[], string]> = [
      [[...base, { vip: '10.96.0.300', port: 1, proto: 'tcp', backends: [] }], "service: bad IPv4 address '10.96.0.300'"],
      [[...base, svc(B)], 'apply 3 services: service 10.96.0.11:53/udp is listed twice (EINVAL)'],
      [[base[0], { ...base[1], backends: [...base[1].backends, base[1].backends[0]] }], 'service 10.96.0.11:53/udp: backend 10.244.2.5:5353 is listed twice'],
      [[base[0], svc('10.96.0.11:53/udp=10.244.2.5:5353,10.96.0.10:53')], 'backend 10.96.0.10:53 of 10.96.0.11:53/udp is a service address (VIP of 10.96.0.10:80/tcp)'],
      [[...base, svc('10.244.1.5:9/tcp=10.244.9.9:9')], "service 10.244.1.5:9/tcp's VIP is the address of backend 10.244.1.5:8080 of 10.96.0.10:80/tcp"],
      [[base[0], { ...base[1], backends: [{ ip: '10.244.2.5', port: 5353, weight: 70000 }] }], 'weight 70000 is out of range (0-65535)'],
      [Array.from({ length: 17 }, (_, i) => svc(`10.96.1.${i + 1}:80/tcp=10.244.0.1:80`)), 'service_map holds 16 services; this write needs 19 at once'],
      [[base[0], svc(`10.96.0.11:53/udp=${Array.from({ length: 61 }, (_, i) => `10.244.5.${i + 1}:53`).join(',')}`)], 'room for 63 backends (backend_map), 4 in use, 61 more needed'],
    ];
    for (const [list, msg] of bad) {
      let err: unknown;
      try { table.apply(list); } catch (e) { err = e; }
      expect(err, msg).toBeInstanceOf(Error);
      expect((err as Error).message).toContain(msg);
      expect((err as Error).message).not.toContain('\n');
      expect(dump(maps), msg).toBe(before);
      expect(table.services()).toEqual(base);
    }
    expect(() => table.apply([svc(A), svc(B), svc(A)])).toThrow(BpfError);
    // And the table still works.
    expect(table.apply([svc(A)])).toMatchObject({ servicesRemoved: 1 });
  });

  it('adopts maps pinned on bpffs (what a restarted loader does): same ids, and writes through the pins reach the same maps', () => {
    const dir = `/sys/fs/bpf/libbpf-ts/lbt-test-${process.pid}`;
    try {
      mkdirSync(dir, { recursive: true });
      for (const [k, name] of Object.entries(LB_MAPS)) maps[k as keyof typeof LB_MAPS].pin(join(dir, name));
      table.apply([svc(A), svc(C)]);
      const pinned = ServiceTable.openPinned(dir);
      try {
        expect(pinned.pinDir).toBe(dir);
        expect(pinned.list()).toEqual(table.list());
        pinned.apply([svc(A), svc(C), svc(B)]);
        expect(maps.services.get({ vip: parseIpv4('10.96.0.11'), port: 53, proto: 17 })).toEqual({ id: 2, backend_count: 1 });
      } finally {
        pinned.close();
        pinned.close();
      }
      // The maps stay usable here: only the pinned table's own fds were closed.
      expect(new ServiceTable(maps).size).toBe(3);
      expect(() => ServiceTable.openPinned(join(dir, 'nothing'))).toThrow(/open pinned map .*nothing\/service_map: .*\(ENOENT\)/);
    } finally {
      removePins(dir);
    }
  });
});

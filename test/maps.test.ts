/**
 * Maps on a real kernel, through the object of bpf/testdata/maps.bpf.c:
 * get/set with each flag and its errno, delete, has, iteration, batch
 * operations against iteration, per-CPU values, LRU eviction, struct keys the
 * program writes, a full map, pinning on bpffs, info(), standalone maps, and
 * closing twice.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BpfObject, BpfMap, MapType, mapInfoByFd, possibleCpus, struct, u32, u64, u8,
} from '../src/index.js';
import { ensureObject } from '../src/cli/build.js';
import { kernelTests } from './helpers/kernel.js';
import { throwsBpf } from './helpers/expect.js';

/** struct flow_key / flow_val / pcpu_val of maps.bpf.c */
const FlowKey = struct('flow_key', { saddr: 'ipv4', daddr: 'ipv4', sport: 'be16', dport: 'be16', proto: 'u8', pad: { pad: 3 } });
const FlowVal = struct('flow_val', { packets: 'u64', bytes: 'u64' });
const PcpuVal = struct('pcpu_val', { a: 'u32', b: 'u32', c: 'u32' });

/** An Ethernet + IPv4 + UDP frame from 10.0.0.1:1234 to 10.0.0.2:53. */
function udpFrame(payloadLen: number): Buffer {
  const f = Buffer.alloc(42 + payloadLen);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(28 + payloadLen, 16);
  f[22] = 64;
  f[23] = 17;
  Buffer.from([10, 0, 0, 1, 10, 0, 0, 2]).copy(f, 26);
  f.writeUInt16BE(1234, 34);
  f.writeUInt16BE(53, 36);
  f.writeUInt16BE(8 + payloadLen, 38);
  return f;
}

const byKey = <V>(a: [number, V], b: [number, V]) => a[0] - b[0];

/** The number of possible CPUs, as the kernel lists them ("0-1", "0,2-3"). */
function cpusFromSysfs(): number {
  return readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim().split(',').reduce((n, r) => {
    const [a, b] = r.split('-').map(Number);
    return n + (b === undefined ? 1 : b - a + 1);
  }, 0);
}

describe.skipIf(!kernelTests())('maps on a real kernel', () => {
  const path = ensureObject('testdata', 'maps');
  const load = () => BpfObject.load(path);
  const pins: string[] = [];
  const pinPath = (what: string) => {
    const p = `/sys/fs/bpf/libbpf-ts-test-${process.pid}-${what}`;
    pins.push(p);
    return p;
  };
  afterAll(() => { for (const p of pins) rmSync(p, { force: true }); });

  describe('single elements', () => {
    it('get, set, has and delete on a hash map', () => {
      using obj = load();
      const m = obj.map('hash_u32', u32, u64);
      expect(m.get(1)).toBeUndefined();
      expect(m.has(1)).toBe(false);
      m.set(1, 10);
      m.set(2, 2 ** 53 - 1);
      expect(m.get(1)).toBe(10);
      expect(m.get(2)).toBe(2 ** 53 - 1);
      expect(m.has(1)).toBe(true);
      expect(m.delete(1)).toBe(true);
      expect(m.delete(1)).toBe(false);
      expect(m.has(1)).toBe(false);
      expect(m.get(2)).toBe(2 ** 53 - 1);
    });

    it("honours 'any', 'noexist' and 'exist', with EEXIST and ENOENT", () => {
      using obj = load();
      const m = obj.map('hash_u32', u32, u64);
      m.set(5, 1, 'noexist');
      const e1 = throwsBpf(() => m.set(5, 2, 'noexist'), 'update map hash_u32: key already exists (EEXIST)');
      expect(e1.errno).toBe(17);
      expect(m.get(5)).toBe(1);
      m.set(5, 3, 'exist');
      expect(m.get(5)).toBe(3);
      const e2 = throwsBpf(() => m.set(6, 1, 'exist'), 'update map hash_u32: no such key (ENOENT)');
      expect(e2.code).toBe('ENOENT');
      expect(m.has(6)).toBe(false);
      m.set(5, 4, 'any');
      m.set(6, 5, 'any');
      expect([m.get(5), m.get(6)]).toEqual([4, 5]);
    });

    it('leaves the map unchanged when a key or value does not encode', () => {
      using obj = load();
      const m = obj.map('hash_u32', u32, u64);
      m.set(1, 1);
      expect(() => m.set(1, -1)).toThrow(RangeError);
      expect(() => m.set(-1, 1)).toThrow(RangeError);
      expect(m.get(1)).toBe(1);
      expect([...m.keys()]).toEqual([1]);
    });

    it('treats an array as pre-filled: every index exists, none can be deleted or added', () => {
      using obj = load();
      const a = obj.map('array_u32', u32, u64);
      expect([0, 1, 2, 3].map((i) => a.get(i))).toEqual([0, 0, 0, 0]);
      expect(a.has(3)).toBe(true);
      expect(a.has(4)).toBe(false);
      expect(a.get(4)).toBeUndefined();
      a.set(3, 33);
      expect(a.get(3)).toBe(33);
      throwsBpf(() => a.set(3, 1, 'noexist'), 'update map array_u32: key already exists (EEXIST)');
      throwsBpf(() => a.set(4, 1), 'update map array_u32: index out of range (the array has 4 entries) (E2BIG)');
      throwsBpf(() => a.delete(1), 'delete from map array_u32: Invalid argument (EINVAL)');
      expect([...a].sort(byKey)).toEqual([[0, 0], [1, 0], [2, 0], [3, 33]]);
    });

    it('checks codec sizes and per-CPU-ness against the map', () => {
      using obj = load();
      expect(() => obj.map('hash_u32', u64, u64)).toThrow(new TypeError("map hash_u32: key codec is 8 bytes, the map's key is 4"));
      expect(() => obj.map('hash_u32', u32, u32)).toThrow(new TypeError("map hash_u32: value codec is 4 bytes, the map's value is 8"));
      expect(() => obj.map('percpu_counts', u32, u64)).toThrow(new TypeError('map percpu_counts is a percpu_array map: open it with perCpuMap()'));
      expect(() => obj.perCpuMap('hash_u32', u32, u64)).toThrow(new TypeError('map hash_u32 is a hash map: open it with map()'));
    });
  });

  describe('iteration', () => {
    it('yields every key and entry once, through keys(), entries() and for-of', () => {
      using obj = load();
      const m = obj.map('hash_u32', u32, u64);
      expect([...m.keys()]).toEqual([]);
      expect([...m]).toEqual([]);
      const want: [number, number][] = Array.from({ length: 50 }, (_, i) => [i * 7, i * 1000]);
      for (const [k, v] of want) m.set(k, v);
      expect([...m.keys()].sort((a, b) => a - b)).toEqual(want.map(([k]) => k));
      expect([...m.entries()].sort(byKey)).toEqual(want);
      const seen: [number, number][] = [];
      for (const e of m) seen.push(e);
      expect(seen.sort(byKey)).toEqual(want);
    });

    it('clear() empties a map', () => {
      using obj = load();
      const m = obj.map('hash_u32', u32, u64);
      for (let i = 0; i < 20; i++) m.set(i, i);
      m.clear();
      expect([...m.keys()]).toEqual([]);
    });
  });

  describe('batch operations', () => {
    const entries: [number, number][] = Array.from({ length: 1000 }, (_, i) => [i * 3 + 1, i * i]);

    it('updateBatch writes what iteration then reads; lookupBatch and entriesBatched read the same at any chunk size', () => {
      using obj = load();
      const m = obj.map('batch', u32, u64);
      expect(m.supportsBatch).toBe(true);
      expect(m.lookupBatch()).toEqual([]);
      expect(m.updateBatch(entries)).toBe(1000);
      const iterated = [...m.entries()].sort(byKey);
      expect(iterated).toEqual(entries);
      for (const chunk of [undefined, 1, 7, 64, 4096]) {
        expect(m.lookupBatch(chunk).sort(byKey), `chunk ${chunk}`).toEqual(entries);
        expect([...m.entriesBatched(chunk)].sort(byKey), `entriesBatched, chunk ${chunk}`).toEqual(entries);
      }
      let calls = 0;
      let total = 0;
      m.lookupBatchRaw((keys, values, count) => {
        calls++;
        total += count;
        expect(keys.length).toBeGreaterThanOrEqual(count * 4);
        expect(values.length).toBeGreaterThanOrEqual(count * 8);
        for (let i = 0; i < count; i++) expect(u64.decode(values, i * 8)).toBe(((u32.decode(keys, i * 4) - 1) / 3) ** 2);
      }, 100);
      expect(total).toBe(1000);
      expect(calls).toBeGreaterThanOrEqual(10);
    });

    it('deleteBatch deletes exactly the given keys', () => {
      using obj = load();
      const m = obj.map('batch', u32, u64);
      m.updateBatch(entries);
      const gone = entries.filter((_, i) => i % 2 === 0).map(([k]) => k);
      expect(m.deleteBatch(gone)).toBe(500);
      expect([...m.entries()].sort(byKey)).toEqual(entries.filter((_, i) => i % 2 === 1));
      expect(m.deleteBatch([])).toBe(0);
      expect(m.updateBatch([])).toBe(0);
      const e = throwsBpf(() => m.deleteBatch([gone[0]]), /^batch delete from map batch: .* \(ENOENT\)$/);
      expect(e.errno).toBe(2);
    });

    it('updateBatch overwrites existing keys and refuses per-element flags', () => {
      using obj = load();
      const m = obj.map('batch', u32, u64);
      m.updateBatch([[1, 1], [2, 2]]);
      m.updateBatch([[2, 20], [3, 30]]);
      expect(m.lookupBatch().sort(byKey)).toEqual([[1, 1], [2, 20], [3, 30]]);
      throwsBpf(() => m.updateBatch([[4, 4]], 'noexist'), /^batch update map batch: the kernel's batch update takes no 'noexist' flag: .* \(EINVAL\)$/);
      throwsBpf(() => m.updateBatch([[4, 4]], 'exist'), /\(EINVAL\)$/);
      expect(m.has(4)).toBe(false);
    });

    it('reads arrays and per-CPU maps in batches too', () => {
      using obj = load();
      const a = obj.map('array_u32', u32, u64);
      a.set(2, 22);
      expect(a.lookupBatch().sort(byKey)).toEqual([[0, 0], [1, 0], [2, 22], [3, 0]]);
      const pc = obj.perCpuMap('percpu_hash', u32, PcpuVal);
      pc.set(1, { a: 1, b: 2, c: 3 });
      pc.set(2, { a: 4, b: 5, c: 6 });
      const got: Array<[number, number[]]> = [];
      pc.lookupBatchRaw((keys, values, count) => {
        const slot = values.length / Math.max(1, keys.length / 4) / possibleCpus;
        expect(slot).toBe(16); // 12-byte values, 8-byte aligned per CPU
        for (let i = 0; i < count; i++) {
          const k = u32.decode(keys, i * 4);
          got.push([k, Array.from({ length: possibleCpus }, (_, c) => PcpuVal.decode(values, (i * possibleCpus + c) * 16).a)]);
        }
      });
      expect(got.sort(byKey)).toEqual([[1, Array(possibleCpus).fill(1)], [2, Array(possibleCpus).fill(4)]]);
    });
  });

  describe('per-CPU maps', () => {
    it('have one value per possible CPU', () => {
      expect(possibleCpus).toBe(cpusFromSysfs());
      using obj = load();
      const pc = obj.perCpuMap('percpu_hash', u32, PcpuVal);
      const values = Array.from({ length: possibleCpus }, (_, i) => ({ a: i + 1, b: 100 + i, c: 0xffffffff - i }));
      pc.set(7, values);
      expect(pc.get(7)).toEqual(values);
      expect(pc.sum(7, (v) => v.a)).toBe((possibleCpus * (possibleCpus + 1)) / 2);
      expect(pc.has(7)).toBe(true);
      expect(pc.get(8)).toBeUndefined();
      expect(pc.sum(8, (v) => v.a)).toBe(0);
    });

    it('write one value to every CPU, or refuse the wrong number of values', () => {
      using obj = load();
      const pc = obj.perCpuMap('percpu_hash', u32, PcpuVal);
      pc.set(1, { a: 5, b: 6, c: 7 });
      expect(pc.get(1)).toEqual(Array(possibleCpus).fill({ a: 5, b: 6, c: 7 }));
      expect(() => pc.set(1, Array(possibleCpus + 1 - 2).fill({ a: 0, b: 0, c: 0 }))).toThrow(
        new RangeError(`map percpu_hash: ${possibleCpus} per-CPU values needed, got ${possibleCpus - 1}`),
      );
      throwsBpf(() => pc.set(1, { a: 1, b: 1, c: 1 }, 'noexist'), 'update map percpu_hash: key already exists (EEXIST)');
      expect([...pc.entries()]).toEqual([[1, Array(possibleCpus).fill({ a: 5, b: 6, c: 7 })]]);
      expect(pc.delete(1)).toBe(true);
      expect([...pc]).toEqual([]);
    });

    it('add up what the program counted on whichever CPU ran it', () => {
      using obj = load();
      const counts = obj.perCpuMap('percpu_counts', u32, u64);
      expect(counts.get(0)).toEqual(Array(possibleCpus).fill(0));
      const start = Array.from({ length: possibleCpus }, (_, i) => (i + 1) * 100);
      counts.set(0, start);
      obj.program('count_packets').testRun({ data: udpFrame(10), repeat: 9 });
      const after = counts.get(0)!;
      expect(after.reduce((a, b) => a + b, 0)).toBe(start.reduce((a, b) => a + b, 0) + 9);
      after.forEach((v, i) => expect(v).toBeGreaterThanOrEqual(start[i]));
      expect(counts.sum(0)).toBe(start.reduce((a, b) => a + b, 0) + 9);
      throwsBpf(() => counts.set(1, 0), 'update map percpu_counts: index out of range (the array has 1 entries) (E2BIG)');
    });
  });

  describe('struct keys', () => {
    it('decode the keys and values the program wrote, and look them up by value', () => {
      using obj = load();
      const flows = obj.map('flows', FlowKey, FlowVal);
      const frame = udpFrame(100);
      obj.program('count_packets').testRun({ data: frame, repeat: 3 });
      const key = { saddr: '10.0.0.1', daddr: '10.0.0.2', sport: 1234, dport: 53, proto: 17 };
      expect([...flows]).toEqual([[key, { packets: 3, bytes: 3 * frame.length }]]);
      expect(flows.get(key)).toEqual({ packets: 3, bytes: 3 * frame.length });
      expect(flows.get({ ...key, sport: 1235 })).toBeUndefined();
      // A key written from user space is the one the program finds.
      const other = { ...key, saddr: '10.9.9.9' };
      flows.set(other, { packets: 100, bytes: 1 });
      frame.set([10, 9, 9, 9], 26);
      obj.program('count_packets').testRun({ data: frame });
      expect(flows.get(other)).toEqual({ packets: 101, bytes: 1 + frame.length });
      expect(flows.lookupBatch().length).toBe(2);
    });
  });

  describe('full maps and LRU', () => {
    it('a full hash map refuses new keys with E2BIG, naming its size', () => {
      using obj = BpfObject.open(path);
      obj.setMaxEntries('hash_u32', 4).load();
      const m = obj.map('hash_u32', u32, u64);
      expect(m.maxEntries).toBe(4);
      for (let i = 0; i < 4; i++) m.set(i, i);
      const e = throwsBpf(() => m.set(4, 4), 'update map hash_u32: map is full (4 entries) (E2BIG)');
      expect(e.code).toBe('E2BIG');
      m.set(3, 33, 'exist'); // updates still work
      expect(m.get(3)).toBe(33);
      m.delete(0);
      m.set(4, 4);
      throwsBpf(() => m.updateBatch([[10, 1], [11, 1]]), 'batch update map hash_u32: map is full (4 entries) (E2BIG)');
      expect([...m.keys()].sort()).toEqual([1, 2, 3, 4]);
    });

    it('an LRU hash evicts old keys instead of filling up', () => {
      using obj = load();
      const lru = obj.map('lru', u32, u64);
      for (let i = 0; i < 1000; i++) lru.set(i, i);
      const keys = [...lru.keys()];
      expect(keys.length).toBeGreaterThan(0);
      expect(keys.length).toBeLessThanOrEqual(64);
      expect(lru.get(999)).toBe(999);
      expect(lru.has(0)).toBe(false);
      throwsBpf(() => lru.set(999, 1, 'noexist'), 'update map lru: key already exists (EEXIST)');
    });
  });

  describe('pinning', () => {
    it('pins a map on bpffs; openPinned shares it, even after the object is closed', () => {
      const p = pinPath('hash');
      let id: number;
      {
        using obj = load();
        const m = obj.map('hash_u32', u32, u64);
        m.set(1, 11);
        m.pin(p);
        expect(existsSync(p)).toBe(true);
        id = m.info().id;
        using pinned = BpfMap.openPinned(p, u32, u64);
        expect(pinned.info().id).toBe(id);
        expect(pinned.name).toBe('hash_u32');
        expect(pinned.type).toBe(MapType.HASH);
        expect(pinned.get(1)).toBe(11);
        pinned.set(2, 22);
        expect(m.get(2)).toBe(22);
        throwsBpf(() => m.pin(p), `pin map hash_u32 at ${p}: File exists (EEXIST)`);
      }
      using again = BpfMap.openPinned(p, u32, u64);
      expect(again.info().id).toBe(id);
      expect([...again].sort(byKey)).toEqual([[1, 11], [2, 22]]);
      rmSync(p);
    });

    it('refuses paths with nothing pinned, outside bpffs, and codecs of the wrong size', () => {
      const p = pinPath('nothing');
      throwsBpf(() => BpfMap.openPinned(p, u32, u64), `open pinned map ${p}: No such file or directory (ENOENT)`);
      using obj = load();
      const m = obj.map('hash_u32', u32, u64);
      throwsBpf(() => m.pin(`/tmp/libbpf-ts-test-${process.pid}-pin`), /^pin map hash_u32 at \/tmp\/\S+: .* \(EPERM\)$/);
      const q = pinPath('sizes');
      m.pin(q);
      expect(() => BpfMap.openPinned(q, u64, u64)).toThrow(new TypeError("map hash_u32: key codec is 8 bytes, the map's key is 4"));
      rmSync(q);
    });
  });

  describe('info, standalone maps and closing', () => {
    it('info() is what the kernel says about the map', () => {
      using obj = load();
      const m = obj.map('hash_u32', u32, u64);
      const info = m.info();
      expect(info).toEqual({
        name: 'hash_u32', type: MapType.HASH, typeName: 'hash', id: expect.any(Number),
        keySize: 4, valueSize: 8, maxEntries: 64, flags: 0,
        btfId: expect.any(Number), btfKeyTypeId: expect.any(Number), btfValueTypeId: expect.any(Number),
      });
      expect(info.btfId).toBeGreaterThan(0);
      expect(info.id).toBeGreaterThan(0);
      expect(mapInfoByFd(m.fd)).toEqual(info);
      expect(obj.map('hash_u32', u32, u64).info().id).toBe(info.id);
      const pc = obj.perCpuMap('percpu_hash', u32, PcpuVal).info();
      expect(pc).toMatchObject({ name: 'percpu_hash', type: MapType.PERCPU_HASH, typeName: 'percpu_hash', keySize: 4, valueSize: 12, maxEntries: 16 });
      expect(pc.id).not.toBe(info.id);
      expect(obj.map('lru', u32, u64).info().typeName).toBe('lru_hash');
      // The kernel answers EBADFD (not EBADF) for a bad fd here.
      throwsBpf(() => mapInfoByFd(999_999), 'get info of map fd 999999: File descriptor in bad state (EBADFD)');
    });

    it('creates standalone maps, and refuses impossible ones', () => {
      const m = BpfMap.create({ type: MapType.HASH, name: 'lbts_standalone', maxEntries: 2 }, u8, u32);
      try {
        expect(m.info()).toMatchObject({ name: 'lbts_standalone', type: MapType.HASH, keySize: 1, valueSize: 4, maxEntries: 2 });
        m.set(1, 0xdeadbeef);
        m.set(2, 2);
        expect(m.get(1)).toBe(0xdeadbeef);
        throwsBpf(() => m.set(3, 3), 'update map lbts_standalone: map is full (2 entries) (E2BIG)');
      } finally {
        m.close();
      }
      m.close();
      throwsBpf(() => m.fd, 'use map lbts_standalone: map is closed (EBADF)');
      throwsBpf(() => BpfMap.create({ type: MapType.HASH, name: 'lbts_bad', maxEntries: 0 }, u32, u32), 'create map lbts_bad: Invalid argument (EINVAL)');
    });

    it("closing one handle twice leaves the object's other handles to the map working", () => {
      using obj = load();
      const a = obj.map('hash_u32', u32, u64);
      const b = obj.map('hash_u32', u32, u64);
      a.set(1, 1);
      a.close();
      a.close();
      throwsBpf(() => a.get(1), 'use map hash_u32: map is closed (EBADF)');
      expect(b.get(1)).toBe(1);
      b.set(2, 2);
      expect(obj.map('hash_u32', u32, u64).get(2)).toBe(2);
    });
  });
});

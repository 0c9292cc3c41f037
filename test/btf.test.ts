/**
 * BTF-typed maps and globals on a real kernel, with the object of
 * bpf/testdata/btf_kinds.bpf.o: maps opened without codecs (by the object,
 * by id, pinned), per-CPU values per CPU, globals read and written through
 * the mapping while the program (run with BPF_PROG_TEST_RUN) updates them,
 * .rodata read-only, a BPF_F_MMAPABLE array, and use after close.
 */
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { BpfMap, BpfObject, PerCpuMap, possibleCpus, struct } from '../src/index.js';
import { ensureObject } from '../src/cli/build.js';
import { kernelTests } from './helpers/kernel.js';

const frame = Buffer.alloc(60);
frame.writeUInt16BE(0x0800, 12);

describe.skipIf(!kernelTests())('BTF-typed maps and globals', () => {
  const path = ensureObject('testdata', 'btf_kinds');
  const pin = `/sys/fs/bpf/lbts-btf-${process.pid}`;
  afterAll(() => rmSync(pin, { force: true }));

  it('opens maps without codecs: keys and values with the C field names', () => {
    using obj = BpfObject.load(path);
    const m = obj.map('conn_table');
    m.set({ src_ip: '10.0.0.1', dst_ip: '10.0.0.2', proto: 6 }, { packets: 3n, bytes: 180 });
    expect([...m.entries()]).toEqual([[{ src_ip: '10.0.0.1', dst_ip: '10.0.0.2', proto: 6, pad: [0, 0, 0] }, { packets: 3n, bytes: 180n }]]);
    // The hand-written codec of the same struct reads what the BTF codec wrote.
    const hand = obj.map('conn_table', struct('conn_key', { src_ip: 'ipv4', dst_ip: 'ipv4', proto: 'u8', pad: { pad: 3 } }), struct('conn_val', { packets: 'u64', bytes: 'u64' }));
    expect(hand.get({ src_ip: '10.0.0.1', dst_ip: '10.0.0.2', proto: 6 })).toEqual({ packets: 3, bytes: 180 });
    expect(() => m.set({ src_ip: '10.0.0.1', nope: 1 }, { packets: 1 })).toThrow(/^conn_key: struct conn_key has no field 'nope'/);

    const k = obj.map('kinds_map');
    k.set(1, { name: 'abc', color: 'BLUE', bf_b: 99, un: { as_u16: [1, 2] } });
    expect(k.get(1)).toMatchObject({ name: 'abc', color: 'BLUE', bf_b: 99, un: { as_u32: 0x00020001, as_u16: [1, 2] } });

    m.pin(pin);
    const info = m.info();
    expect(info.btfId).toBeGreaterThan(0);
    using byId = BpfMap.openById(info.id);
    expect(byId.get({ src_ip: '10.0.0.1', dst_ip: '10.0.0.2', proto: 6 })).toEqual({ packets: 3n, bytes: 180n });
    using pinned = BpfMap.openPinned(pin);
    expect(pinned.name).toBe('conn_table');
    expect([...pinned.keys()]).toHaveLength(1);
  });

  it('per-CPU maps give one value per possible CPU', () => {
    using obj = BpfObject.load(path);
    const m = obj.perCpuMap('pcpu_table');
    const key = { src_ip: '1.2.3.4', dst_ip: '5.6.7.8', proto: 17 };
    m.set(key, Array.from({ length: possibleCpus }, (_, i) => ({ packets: i + 1, bytes: 10 })));
    const got = m.get(key)!;
    expect(got).toHaveLength(possibleCpus);
    expect(got[0]).toEqual({ packets: 1n, bytes: 10n });
    expect(m.summed(key)).toEqual({ packets: BigInt((possibleCpus * (possibleCpus + 1)) / 2), bytes: BigInt(10 * possibleCpus) });
    using byId = PerCpuMap.openById(m.info().id);
    expect(byId.get(key)).toEqual(got);
  });

  it('reads and writes globals through the mapping while the program updates them', () => {
    using obj = BpfObject.load(path);
    const g = obj.globals;
    expect(Object.keys(g).sort()).toEqual(['bss', 'data', 'rodata']);
    expect(g.bss.packets).toBe(0n);
    expect(g.data.step).toBe(1n);
    expect(g.data.label).toBe('hi');
    expect(g.data.paint).toBe('GREEN');
    expect(g.rodata.verdict).toBe(2);
    expect(g.rodata.banner).toBe('btf');
    const prog = obj.program('count_globals');
    expect(prog.testRun({ data: frame }).retval).toBe(2);
    expect(g.bss.packets).toBe(1n);
    expect(g.bss.last_len).toBe(60);
    expect(g.bss.shape).toEqual({ a: 1, b: 0 });
    g.data.step = 5n;
    g.bss.shape = { a: 10, b: -1 };
    prog.testRun({ data: frame });
    expect(g.bss.packets).toBe(6n);
    expect(g.bss.shape).toEqual({ a: 11, b: -1 });
    g.bss.packets = 100n;
    prog.testRun({ data: frame });
    expect(g.bss.packets).toBe(105n);
    expect(() => { g.rodata.verdict = 1; }).toThrow(new TypeError('rodata.verdict is read-only after load (.rodata is frozen): set it before load'));
    expect(() => { g.bss.shape = { c: 1 }; }).toThrow(/has no field 'c'/);
    expect(g.rodata.verdict).toBe(2);

    const arr = obj.mappedArray('mm_array');
    expect(arr.length).toBe(8);
    expect(arr.get(0)).toEqual({ packets: 3n, bytes: 0n });
    arr.set(1, { packets: 7n, bytes: 8n });
    expect(obj.map('mm_array').get(1)).toEqual({ packets: 7n, bytes: 8n });
    expect(() => arr.get(8)).toThrow(new RangeError('mm_array[8]: index out of range (the array has 8 entries)'));

    obj.close();
    expect(() => g.bss.packets).toThrow(/object is closed \(EBADF\)$/);
    expect(() => arr.get(0)).toThrow(/object is closed \(EBADF\)$/);
  });

  it('says globals need a loaded object', () => {
    using obj = BpfObject.open(path);
    expect(() => obj.globals).toThrow('read globals of btf_kinds: object is not loaded yet (EINVAL)');
  });
});

/**
 * C layouts without a kernel: declareCStruct's natural alignment, and the
 * BTF reader against the test fixture bpf/testdata/maps.bpf.c (the struct
 * codecs the map tests use must match what clang laid out, .rodata variables
 * are where setConst writes them).
 */
import { writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { declareCStruct } from '../../src/ffi/layout.js';
import { btfDatasecVars, btfStruct, withBtfFile } from '../../src/ffi/btf.js';
import { ensureObject } from '../../src/cli/build.js';
import '../../src/ffi/log.js'; // routes libbpf's warnings away from stderr
import { struct, type StructCodec } from '../../src/codec.js';

describe('declareCStruct', () => {
  it('computes offsets, size and alignment like a C compiler', () => {
    const l = declareCStruct('s', [['a', 'uint8_t'], ['p', { bytes: 1 }], ['b', 'uint16_t'], ['c', 'uint32_t'], ['d', 'uint64_t']]);
    expect(l).toEqual({
      name: 's', size: 16, align: 8,
      fields: [
        { name: 'a', offset: 0, size: 1 }, { name: 'p', offset: 1, size: 1 }, { name: 'b', offset: 2, size: 2 },
        { name: 'c', offset: 4, size: 4 }, { name: 'd', offset: 8, size: 8 },
      ],
    });
    expect(declareCStruct('t', [['a', 'uint16_t'], ['b', { bytes: 2 }]]).align).toBe(2);
    expect(declareCStruct('u', [['a', { bytes: 5 }]])).toMatchObject({ size: 5, align: 1 });
    expect(declareCStruct('v', [['a', 'int32_t'], ['b', 'int32_t'], ['c', 'int64_t']])).toMatchObject({ size: 16, align: 8 });
  });

  it('refuses implicit padding, inside or trailing', () => {
    expect(() => declareCStruct('s', [['a', 'uint16_t'], ['b', 'uint64_t']])).toThrow(TypeError);
    expect(() => declareCStruct('s', [['a', 'uint16_t'], ['b', 'uint64_t']])).toThrow(/6 bytes of implicit padding after 'a'/);
    expect(() => declareCStruct('s', [['a', 'uint64_t'], ['b', 'uint16_t']])).toThrow(/6 bytes of implicit trailing padding/);
  });
});

/** Codecs mirroring the structs of bpf/testdata/maps.bpf.c. */
const fixtures: Array<[string, StructCodec<unknown>]> = [
  ['flow_key', struct('flow_key', { saddr: 'ipv4', daddr: 'ipv4', sport: 'be16', dport: 'be16', proto: 'u8', pad: { pad: 3 } }) as StructCodec<unknown>],
  ['flow_val', struct('flow_val', { packets: 'u64', bytes: 'u64' }) as StructCodec<unknown>],
  ['pcpu_val', struct('pcpu_val', { a: 'u32', b: 'u32', c: 'u32' }) as StructCodec<unknown>],
];

describe('BTF of the compiled fixture', () => {
  const obj = ensureObject('testdata', 'maps');

  for (const [name, codec] of fixtures) {
    it(`struct ${name} matches its codec member by member`, () => {
      const btf = withBtfFile(obj, (b) => btfStruct(b, name));
      expect(btf).toBeDefined();
      expect({ size: codec.layout.size, members: codec.layout.fields.map((f) => ({ ...f })) }).toEqual({ size: btf!.size, members: btf!.members });
    });
  }

  it('finds no struct that does not exist', () => {
    expect(withBtfFile(obj, (b) => btfStruct(b, 'no_such_struct'))).toBeUndefined();
  });

  it('lists the const volatile globals of .rodata with their sizes', () => {
    // Offsets are not checked here: clang leaves them 0 in the .o and libbpf
    // fixes them up when it opens the object (setConst is tested on a kernel).
    const vars = withBtfFile(obj, (b) => btfDatasecVars(b, '.rodata'));
    expect(vars.map(({ name, size }) => ({ name, size }))).toEqual([
      { name: 'verdict', size: 4 },
      { name: 'rewrite', size: 1 },
      { name: 'big_const', size: 8 },
    ]);
    expect(withBtfFile(obj, (b) => btfDatasecVars(b, '.nosuchsection'))).toEqual([]);
  });

  it('refuses a file without BTF, naming it', () => {
    const p = join(tmpdir(), `libbpf-ts-nobtf-${process.pid}.o`);
    writeFileSync(p, 'not an ELF file');
    try {
      expect(() => withBtfFile(p, () => 0)).toThrow(new RegExp(`^parse BTF of ${p}: `));
    } finally {
      rmSync(p, { force: true });
    }
  });
});

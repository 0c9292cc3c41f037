/**
 * Every struct shared between a kernel program and TS (each lesson module's
 * sharedLayouts) must match the BTF in the compiled object byte for byte:
 * size, and each member's name, offset and size. Drift fails the suite.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { withBtfFile, btfStruct } from '../src/ffi/btf.js';
import { ensureObject, REPO_ROOT } from '../src/cli/build.js';
import type { SharedLayout } from '../src/lessons/shared.js';
import type { FieldSpec } from '../src/codec.js';
import { formatIpv4 } from '../src/codec.js';
import { Btf, BtfKind, btfCodec, type BtfValue } from '../src/btf/index.js';

/** A sample value of a hand-written field (distinct per field index, never all zeros). */
function sampleOf(f: FieldSpec, i: number): unknown {
  if (typeof f === 'object') {
    if ('pad' in f) return undefined;
    // Half text, half NUL: reads the same as a char[] string and as bytes.
    return Uint8Array.from({ length: f.bytes }, (_, j) => (j < f.bytes / 2 ? 97 + ((i + j) % 26) : 0));
  }
  switch (f) {
    case 'u8': return 200 - i;
    case 'u16': return 0xbe00 + i;
    case 'u32': return 0xdead0000 + i;
    case 'i32': return -123456 - i;
    case 'u64': return 2 ** 40 + i;
    case 'u64big': return 2n ** 63n + BigInt(i);
    case 'i64big': return -5n - BigInt(i);
    case 'be16': return 0x1200 + i;
    case 'be32': return 0x0a000100 + i;
    case 'ipv4': return `10.1.2.${i + 1}`;
  }
}

/** A hand-decoded field as the BTF codec shows it (bigints for 64-bit, dotted addresses, char[] text, byte arrays as number arrays). */
function asBtf(x: unknown, btfSide: BtfValue): unknown {
  if (typeof btfSide === 'bigint') return BigInt(x as number | bigint);
  if (typeof btfSide === 'string' && typeof x === 'number') return formatIpv4(x);
  if (typeof btfSide === 'number' && typeof x === 'string') return x.split('.').reduce((a, o) => a * 256 + Number(o), 0);
  if (x instanceof Uint8Array) {
    if (typeof btfSide === 'string') { const end = x.indexOf(0); return Buffer.from(x.subarray(0, end < 0 ? x.length : end)).toString('utf8'); }
    // an array of wider integers spelled as its bytes (maglev_table, dnat_counters): its elements, host order
    if (Array.isArray(btfSide) && btfSide.length > 0 && btfSide.length < x.length) {
      const w = x.length / btfSide.length;
      const b = Buffer.from(x.buffer, x.byteOffset, x.length);
      return btfSide.map((_, k) => (w === 8 ? b.readBigUInt64LE(k * 8) : b.readUIntLE(k * w, w)));
    }
    return Array.from(x);
  }
  return x;
}

const dir = join(REPO_ROOT, 'src', 'lessons');
const modules = readdirSync(dir).filter((f) => f.endsWith('.ts') && f !== 'shared.ts');

describe('shared layouts match the BTF of the compiled objects', async () => {
  const all: SharedLayout[] = [];
  for (const f of modules) {
    const mod = (await import(pathToFileURL(join(dir, f)).href)) as { sharedLayouts?: SharedLayout[] };
    all.push(...(mod.sharedLayouts ?? []));
  }
  it('finds shared layouts to check', () => {
    expect(all.length).toBeGreaterThan(0);
  });
  for (const l of all) {
    it(`struct ${l.cName} in ${l.object}.bpf.o`, () => {
      const path = ensureObject(l.object);
      const btf = withBtfFile(path, (b) => btfStruct(b, l.cName));
      expect(btf, `struct ${l.cName} not in the BTF of ${path}`).toBeDefined();
      const ts = { size: l.codec.layout.size, members: l.codec.layout.fields.map((f) => ({ name: f.name, offset: f.offset, size: f.size })) };
      expect(ts).toEqual({ size: btf!.size, members: btf!.members });
    });
  }
});

describe('hand-written codecs and BTF-typed codecs agree on sample values', async () => {
  const all: SharedLayout[] = [];
  for (const f of modules) {
    const mod = (await import(pathToFileURL(join(dir, f)).href)) as { sharedLayouts?: SharedLayout[] };
    all.push(...(mod.sharedLayouts ?? []));
  }
  const btfs = new Map<string, Btf>();
  for (const l of all) {
    it(`struct ${l.cName} in ${l.object}.bpf.o`, () => {
      if (!btfs.has(l.object)) btfs.set(l.object, Btf.fromFile(ensureObject(l.object)));
      const btf = btfs.get(l.object)!;
      const id = btf.find(l.cName, BtfKind.STRUCT)[0];
      expect(id, `struct ${l.cName} not in the BTF of ${l.object}`).toBeDefined();
      const typed = btfCodec(btf, id);
      const spec = l.codec.spec!;
      const value = Object.fromEntries(Object.entries(spec).map(([k, f], i) => [k, sampleOf(f, i)]).filter(([, v]) => v !== undefined));
      // hand encode -> BTF decode: every field the same value
      const bytes = Buffer.alloc(l.codec.size);
      l.codec.encode(value, bytes);
      const viaBtf = typed.decode(bytes) as Record<string, BtfValue>;
      const hand = l.codec.decode(bytes) as Record<string, unknown>;
      for (const [k, x] of Object.entries(hand)) {
        expect(k in viaBtf, `field ${k}`).toBe(true);
        expect(viaBtf[k], `field ${k}`).toEqual(asBtf(x, viaBtf[k]));
      }
      // BTF encode of that -> the same bytes; hand decode of them -> the same value
      const back = Buffer.alloc(typed.size);
      typed.encode(viaBtf, back);
      expect(back.toString('hex')).toBe(bytes.toString('hex'));
      // BTF encode of the hand value (as the BTF codec shows it, pads left out) -> the same bytes
      const fromHand = Buffer.alloc(typed.size);
      typed.encode(Object.fromEntries(Object.entries(hand).map(([k, x]) => [k, asBtf(x, viaBtf[k])])) as BtfValue, fromHand);
      expect(fromHand.toString('hex')).toBe(bytes.toString('hex'));
      expect(l.codec.decode(fromHand)).toEqual(hand);
    });
  }
});

/**
 * `bpfts gen types`: every lesson's hand-written layout matches what the
 * generator derives from the object's BTF; the generated module imports and
 * its codecs work; the command's output and errors.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Btf } from '../../src/btf/btf.js';
import { genTypes } from '../../src/btf/gen.js';
import { ensureObject, REPO_ROOT } from '../../src/cli/build.js';
import type { FieldSpec, StructCodec } from '../../src/codec.js';
import type { SharedLayout } from '../../src/lessons/shared.js';

const dir = join(REPO_ROOT, 'src', 'lessons');

/** What a field means in memory: 64-bit as number or bigint, be32 or ipv4, are the same bytes. */
function norm(f: FieldSpec): string {
  if (typeof f === 'object') return 'pad' in f ? `pad${f.pad}` : `bytes${f.bytes}`;
  return ({ u64: 'int64', u64big: 'int64', i64big: 'int64', ipv4: 'be32' } as Record<string, string>)[f] ?? f;
}
const normSpec = (s: Readonly<Record<string, FieldSpec>>) => Object.entries(s).map(([k, f]) => [k.startsWith('_pad') || /^pad\d*$/.test(k) ? 'pad' : k, norm(f)]);

describe('gen types', async () => {
  const all: SharedLayout[] = [];
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.ts') && x !== 'shared.ts')) {
    const mod = (await import(pathToFileURL(join(dir, f)).href)) as { sharedLayouts?: SharedLayout[] };
    all.push(...(mod.sharedLayouts ?? []));
  }
  for (const l of all) {
    it(`derives the lesson's struct ${l.cName} of ${l.object}.bpf.o`, () => {
      const r = genTypes(Btf.fromFile(ensureObject(l.object)), { types: [l.cName] });
      const g = r.structs.find((s) => s.cName === l.cName);
      expect(g?.spec, g?.why).toBeDefined();
      expect(normSpec(g!.spec!)).toEqual(normSpec(l.codec.spec!));
    });
  }

  it('prints a module whose codecs work, and TS types for what struct() cannot express', async () => {
    const obj = ensureObject('testdata', 'btf_kinds');
    const r = genTypes(Btf.fromFile(obj), { types: ['ring_rec'], importFrom: pathToFileURL(join(REPO_ROOT, 'src/codec.ts')).href });
    expect(r.maps.map((m) => m.name).sort()).toEqual(['conn_table', 'events', 'kinds_map', 'mm_array', 'pcpu_table']);
    expect(r.text).toContain('export interface Kinds {\n  u8v: number;\n  s8v: number;');
    expect(r.text).toContain('  color: ColorName | number;');
    expect(r.text).toContain('export interface BssGlobals {\n  packets: bigint;\n  last_len: number;\n  shape: Inner;');
    expect(r.structs.find((s) => s.cName === 'kinds')!.why).toBe('member s8v is a signed 8-bit integer');
    const tmp = mkdtempSync(join(tmpdir(), 'lbts-gen-'));
    try {
      const file = join(tmp, 'gen.ts');
      writeFileSync(file, r.text);
      const mod = (await import(pathToFileURL(file).href)) as Record<string, StructCodec<Record<string, unknown>>> & { Color: Record<string, number> };
      expect(mod.connKey.size).toBe(12);
      const b = Buffer.alloc(12);
      mod.connKey.encode({ src_ip: '10.0.0.1', dst_ip: '10.0.0.2', proto: 6 }, b);
      expect(b.toString('hex')).toBe('0a0000010a00000206000000');
      expect(mod.ringRec.size).toBe(20);
      expect(mod.Color).toEqual({ RED: 0, GREEN: 1, BLUE: 7 });
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('bpfts gen types: output on stdout, one-line errors with exit 2', () => {
    const run = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src/cli/bpfts/main.ts'), 'gen', 'types', ...args], { encoding: 'utf8', cwd: REPO_ROOT });
    const good = run([ensureObject('connection_tracker')]);
    expect(good.status).toBe(0);
    expect(good.stdout).toContain("export const connKey = struct(\"conn_key\", {\n  src_ip: 'ipv4',\n  dst_ip: 'ipv4',\n  proto: 'u8',\n  pad: { pad: 3 },\n});");
    const bad = run([ensureObject('connection_tracker'), '--type', 'nope']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe(`bpfts: gen types ${ensureObject('connection_tracker')}: no struct, union, enum or typedef named 'nope' in the BTF\n`);
    const missing = run(['/nonexistent.bpf.o']);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toBe('bpfts: gen types /nonexistent.bpf.o: no such file\n');
  });
});

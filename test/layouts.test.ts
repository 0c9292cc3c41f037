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

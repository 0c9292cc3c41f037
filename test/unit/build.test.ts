/**
 * A failed rebuild shows the compiler's errors (file:line: error: with their
 * context), not only the last lines of make's output: built from a copy of
 * bpf/ with a lesson source broken on purpose (removed afterwards).
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BPF_DIR, buildErrors, ensureObject } from '../../src/cli/build.js';

describe('ensureObject on a source that does not compile', () => {
  it('shows every error line with its context, not the warnings, bounded', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'lbts-build-'));
    try {
      for (const f of ['Makefile', 'include', 'hello']) cpSync(join(BPF_DIR, f), join(tmp, f), { recursive: true });
      const src = join(tmp, 'hello', 'hello.bpf.c');
      const lines = readFileSync(src, 'utf8').split('\n');
      const at = lines.findIndex((l) => l.startsWith('int hello('));
      // An error, then enough warnings after it to push it out of the last lines of the output.
      const broken = [
        'static int broken(void) { return undeclared_thing; }',
        ...Array.from({ length: 6 }, (_, i) => `static int unused_${i}(void) { int x; return x; }`),
      ];
      lines.splice(at, 0, ...broken);
      writeFileSync(src, lines.join('\n'));
      let err: unknown;
      try { ensureObject('hello', 'hello', { bpfDir: tmp }); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(Error);
      const msg = (err as Error).message.split('\n');
      expect(msg[0]).toBe(`build ${join(tmp, 'build', 'hello.bpf.o')}: make -C ${tmp} hello failed:`);
      expect(msg[1]).toBe(`hello/hello.bpf.c:${at + 1}:34: error: use of undeclared identifier 'undeclared_thing'`);
      expect(msg[2]).toContain('return undeclared_thing;');
      expect(msg[3].trim()).toBe('^');
      expect(msg).toContain('1 error generated.');
      expect(msg.some((l) => / warning: /.test(l))).toBe(false);
      expect(msg.length).toBeLessThanOrEqual(41);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('buildErrors', () => {
  const err = (i: number) => [`a.c:${i}:1: error: bad ${i}`, `  code ${i}`, '  ^'];
  it('keeps errors and their notes, drops warnings, and bounds the output', () => {
    const out = [
      'a.c:1:1: warning: w', '  w', '  ^', ...err(2), 'a.c:3:1: note: expanded from macro', '  n', 'a.c:4:1: warning: w2', '2 errors generated.',
      "make: *** [Makefile:21: build/a.bpf.o] Error 1",
    ].join('\n');
    expect(buildErrors(out)).toEqual([...err(2), 'a.c:3:1: note: expanded from macro', '  n', '2 errors generated.']);
    const many = Array.from({ length: 30 }, (_, i) => err(i).join('\n')).join('\n');
    const shown = buildErrors(many, 10);
    expect(shown.length).toBe(10);
    expect(shown[9]).toBe('... (81 more lines: run the make command to see them all)');
  });
  it('shows the last lines when there is no compiler error', () => {
    expect(buildErrors('x\ny\nmake: *** No rule to make target', 2)).toEqual(['y', 'make: *** No rule to make target']);
  });
});

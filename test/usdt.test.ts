/**
 * USDT on a real kernel: a small C program with a USDT probe (its note
 * written by hand in inline asm, test/fixtures/usdt_target.c), compiled
 * here with clang; the probe's hits, its argument and the attach cookie
 * are counted by bpf/testdata/usdt.bpf.c; a probe or notes that do not
 * exist are one-line errors; a non-USDT program says what it is.
 */
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BpfObject, u32, u64 } from '../src/index.js';
import { ensureObject, REPO_ROOT } from '../src/cli/build.js';
import { kernelTests } from './helpers/kernel.js';
import { throwsBpf } from './helpers/expect.js';

/** Runs the target: resolves with its pid once started, and `go()` lets it fire `count` probes and resolves at its exit. */
function startTarget(bin: string, count: number): { pid: number; go(): Promise<number | null> } {
  const child = spawn(bin, [String(count)], { stdio: ['pipe', 'ignore', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { pid: child.pid!, go: () => { child.stdin!.end('go\n'); return exited; } };
}

describe.skipIf(!kernelTests())('USDT', () => {
  const objPath = ensureObject('testdata', 'usdt');
  const dir = mkdtempSync(join(tmpdir(), 'lo-usdt-'));
  const bin = join(dir, 'usdt_target');
  execFileSync('clang', ['-O1', '-o', bin, join(REPO_ROOT, 'test/fixtures/usdt_target.c')]);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('counts every hit of a probe in one process, with its argument and the cookie', async () => {
    using obj = BpfObject.load(objPath);
    const counts = obj.map('usdt_counts', u32, u64);
    const t = startTarget(bin, 5);
    using link = obj.program('on_tick').attachUsdt(bin, 'lbts', 'tick', { pid: t.pid, cookie: 99n });
    expect(link.description).toBe(`usdt on_tick on ${bin}:lbts:tick (pid ${t.pid})`);
    expect(await t.go()).toBe(0);
    expect(counts.get(0)).toBe(5);
    expect(counts.get(1)).toBe(1 + 2 + 3 + 4 + 5);
    expect(counts.get(2)).toBe(99);
  });

  it('in every process running the binary; nothing after detach', async () => {
    using obj = BpfObject.load(objPath);
    const counts = obj.map('usdt_counts', u32, u64);
    const link = obj.program('on_tick').attachUsdt(bin, 'lbts', 'tick');
    const [a, b] = [startTarget(bin, 2), startTarget(bin, 3)];
    await Promise.all([a.go(), b.go()]);
    expect(counts.get(0)).toBe(5);
    link.detach();
    link.detach();
    await startTarget(bin, 4).go();
    expect(counts.get(0)).toBe(5);
  });

  it('says in one line when the probe or the notes are missing, and what a wrong program is', () => {
    using obj = BpfObject.load(objPath);
    const p = obj.program('on_tick');
    throwsBpf(() => p.attachUsdt(bin, 'lbts', 'nope'), `attach usdt ${bin}:lbts:nope: no USDT probe lbts:nope in ${bin} (its probes: readelf -n ${bin}) (ENOENT)`);
    throwsBpf(() => p.attachUsdt('/bin/true', 'lbts', 'tick'), 'attach usdt /bin/true:lbts:tick: no USDT probe lbts:tick in /bin/true: it has no USDT notes at all (ENOENT)');
    throwsBpf(() => p.attachUsdt(`${dir}/missing`, 'lbts', 'tick'), `attach usdt ${dir}/missing:lbts:tick: no such file ${dir}/missing (ENOENT)`);
    using other = BpfObject.load(ensureObject('testdata', 'pass'));
    throwsBpf(() => other.program().attachUsdt(bin, 'lbts', 'tick'), /^attach program xdp_pass to usdt lbts:tick: xdp_pass is an xdp program \(section xdp\), not kprobe: it attaches to an interface's XDP hook/);
  });
});
